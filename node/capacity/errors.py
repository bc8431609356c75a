"""Errors of the capacity planner: every bad input or impossible request surfaces as one of these."""


class CapacityError(Exception):
    """Root of every error the capacity planner raises on purpose."""


class InventoryError(CapacityError):
    """An inventory (file or cloud API) that is malformed or breaks a rule; the message names the place."""


class PlanError(CapacityError):
    """An action plan that breaks a rule of the independent checker, or a request the planner cannot serve."""
