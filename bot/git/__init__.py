"""gatebot.git"""
