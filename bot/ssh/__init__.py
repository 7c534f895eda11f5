"""gatebot.ssh"""
