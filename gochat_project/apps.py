from django.apps import AppConfig


class GochatProjectConfig(AppConfig):
    """Holds the operations commands (services, kafka_topics) and GoChat's deploy checks."""

    name = "gochat_project"

    def ready(self) -> None:
        from gochat_project.ops import checks  # noqa: F401  (registers them)
