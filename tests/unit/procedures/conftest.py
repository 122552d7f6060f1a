from tests.unit.procedures.estate_seed import cli_calls, seeded, seeded_vpc

__all__ = ["cli_calls", "seeded", "seeded_vpc"]
