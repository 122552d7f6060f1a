from tests.unit.procedures.estate_seed import seeded

__all__ = ["seeded"]
