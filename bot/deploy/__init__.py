"""gatebot.deploy"""
