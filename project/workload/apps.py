from django.apps import AppConfig


class WorkloadConfig(AppConfig):
    """A small example workload: items read and written, for demos, benchmarks and fault tests."""

    name = "project.workload"
    label = "workload"
    default_auto_field = "django.db.models.BigAutoField"
