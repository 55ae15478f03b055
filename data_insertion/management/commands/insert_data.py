from data_insertion.cli import SimulationCommand


class Command(SimulationCommand):
    pass
