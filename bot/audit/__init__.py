"""gatebot.audit"""
