"""gatebot.github"""
