"""gatebot.onboarding"""
