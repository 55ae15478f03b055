from data_insertion.management.run_command import RunCommand


class Command(RunCommand):
    help = "Same as insert_data (the second seed's name for the simulation)."
