from data_insertion.management.run_command import RunCommand


class Command(RunCommand):
    pass
