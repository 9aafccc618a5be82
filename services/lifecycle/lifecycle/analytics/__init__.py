"""Funnel, time in stage, stage distribution, churn and reactivation, weighted pipeline value: all in SQL."""
