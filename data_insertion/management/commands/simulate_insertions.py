from data_insertion.cli import SimulationCommand


class Command(SimulationCommand):
    help = "Same as insert_data (the second seed's name for the simulation)."
