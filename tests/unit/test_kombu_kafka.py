"""gochat_project.kombu_kafka: per-queue consumer settings over kombu's common ones."""

from django.conf import settings

from gochat_project import kafka
from gochat_project.kombu_kafka import consumer_config


def test_the_persistence_queue_fetches_less_often_and_other_queues_keep_the_common_settings() -> None:
    options = kafka.celery_transport_options()
    common = options["kafka_common_config"]

    persist = consumer_config(kafka.persist_topic(), common, options)
    fanout = consumer_config(kafka.fanout_topic(), common, options)

    assert persist["fetch.wait.max.ms"] == settings.GOCHAT_PERSIST_FETCH_WAIT_MS
    assert fanout["fetch.wait.max.ms"] == options["kafka_consumer_config"]["fetch.wait.max.ms"] == 10
    for queue, config in ((kafka.persist_topic(), persist), (kafka.fanout_topic(), fanout)):
        # kombu's own group and commit settings: offsets committed before carry over.
        assert config["group.id"] == kafka.celery_consumer_group(queue) == f"{queue}-consumer-group"
        assert config["enable.auto.commit"] is False
        assert config["bootstrap.servers"] == settings.KAFKA_BOOTSTRAP
        assert config["session.timeout.ms"] == 6000
