"""Tests of the schedule triggers (pineapple.jobs.schedule)."""
