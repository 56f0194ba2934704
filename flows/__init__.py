"""Prefect flows and the local Prefect server they run against.

Kept empty on purpose: importing ``flows`` must not import Prefect (slow).
"""
