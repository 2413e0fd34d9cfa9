from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark: an app only so that ``manage.py bench_healing`` is found."""

    name = "bench"
    verbose_name = "Benchmark"
