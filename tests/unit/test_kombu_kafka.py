"""gochat_project.infra.kombu_kafka: the queue consumers get kombu's group and GoChat's settings."""

from django.conf import settings

from gochat_project.infra import kafka
from gochat_project.infra.kombu_kafka import consumer_config


def test_queue_consumers_keep_kombus_group_and_gochats_connection_and_tuning() -> None:
    options = kafka.celery_transport_options()
    common = options["kafka_common_config"]

    for queue in (kafka.persist_topic(), kafka.fanout_topic()):
        config = consumer_config(queue, common, options)
        # kombu's own group and commit settings: offsets committed before carry over.
        assert config["group.id"] == kafka.celery_consumer_group(queue) == f"{queue}-consumer-group"
        assert config["enable.auto.commit"] is False
        assert config["bootstrap.servers"] == settings.KAFKA_BOOTSTRAP
        assert config["session.timeout.ms"] == 6000
        assert config["fetch.wait.max.ms"] == 100


def test_the_celery_producer_is_idempotent_and_waits_for_every_replica() -> None:
    producer = kafka.celery_transport_options()["kafka_producer_config"]
    assert producer["acks"] == "all"
    assert producer["enable.idempotence"] is True


def test_workers_do_not_nap_after_an_empty_poll() -> None:
    """kombu sleeps a second after each empty poll by default; GoChat's transport does not
    (the figures before and after are in docs/benchmarks.md, "no longer nap")."""
    from kombu import Connection

    conn = Connection("confluentkafka://127.0.0.1:1", transport="gochat_project.infra.kombu_kafka:Transport",
                      transport_options=kafka.celery_transport_options())
    try:
        assert conn.transport.polling_interval == 0
    finally:
        conn.release()
