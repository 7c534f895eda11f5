"""gatebot.metrics"""
