from django.apps import AppConfig


class GochatProjectConfig(AppConfig):
    """Holds the operations commands (services, kafka_topics)."""

    name = "gochat_project"
