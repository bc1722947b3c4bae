"""The librdkafka settings an operator gives in the environment reach every client."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from gochat_project.settings import kafka_client_settings


def test_security_tls_and_client_id_variables_map_to_librdkafka_settings() -> None:
    config = kafka_client_settings({
        "GOCHAT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "GOCHAT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "GOCHAT_KAFKA_SASL_USERNAME": "gochat", "GOCHAT_KAFKA_SASL_PASSWORD": "s3cret",
        "GOCHAT_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem", "GOCHAT_KAFKA_CLIENT_ID": "gw1", "UNRELATED": "x",
    })
    assert config == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "gochat",
                      "sasl.password": "s3cret", "ssl.ca.location": "/etc/ca.pem", "client.id": "gw1"}


def test_any_other_setting_passes_through_gochat_kafka_config() -> None:
    config = kafka_client_settings({"GOCHAT_KAFKA_CONFIG": " socket.keepalive.enable=true; ssl.endpoint.identification"
                                                           ".algorithm=none;;", "GOCHAT_KAFKA_CLIENT_ID": "w"})
    assert config == {"socket.keepalive.enable": "true", "ssl.endpoint.identification.algorithm": "none",
                      "client.id": "w"}


def test_a_malformed_gochat_kafka_config_is_refused_at_start() -> None:
    with pytest.raises(ImproperlyConfigured, match="not key=value"):
        kafka_client_settings({"GOCHAT_KAFKA_CONFIG": "linger.ms"})


def test_every_client_config_carries_the_operator_settings(settings) -> None:
    from gochat_project.infra import kafka

    settings.KAFKA_CLIENT_SETTINGS = {"client.id": "gochat-test", "security.protocol": "PLAINTEXT"}
    for config in (kafka.producer_config(), kafka.consumer_config("g"),
                   kafka.celery_transport_options()["kafka_common_config"]):
        assert config["client.id"] == "gochat-test" and config["security.protocol"] == "PLAINTEXT"
