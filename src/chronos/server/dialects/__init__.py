"""Dialects: a run's events translated into another wire format (OpenAI, AG-UI, AI SDK).

A dialect starts runs through the app's `Runs` and reads them from the broker like the
native stream does; it owns no run state, so one run can be watched in several dialects at
once.
"""
