"""`gatebot doctor`: every prerequisite of a green first run, each checked with a fix line."""

from bot.onboarding.doctor.context import DoctorContext
from bot.onboarding.doctor.model import CheckResult, DoctorReport
from bot.onboarding.doctor.run import run_doctor

__all__ = ["CheckResult", "DoctorContext", "DoctorReport", "run_doctor"]
