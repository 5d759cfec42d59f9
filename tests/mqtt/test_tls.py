"""TLS with client certificates: a mosquitto that requires them, and the
daemon and the fleet CLI presenting theirs (mqtt.cert_file / key_file).
Certificates are made at test time with the openssl binary."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.fixtures.broker import Broker
from tests.fixtures.tls import OPENSSL, make_certs
from tests.mqtt.conftest import fleet_cli, rollout_id_of

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl binary makes the test certificates; "
                                                        "it is not installed")


@pytest.fixture
def certs():
    # Readable by mosquitto, which drops root for its own user before it reads them.
    directory = Path(tempfile.mkdtemp(prefix="certs-", dir="/tmp"))
    os.chmod(directory, 0o755)
    made = make_certs(directory)
    os.chmod(made.server_key, 0o644)
    yield made
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def broker(certs):
    """Overrides the plain broker: TLS only, a client certificate from our CA required."""
    instance = Broker(listener_options=f"cafile {certs.ca}\ncertfile {certs.server_cert}\n"
                                       f"keyfile {certs.server_key}\nrequire_certificate true\n").start()
    yield instance
    instance.close()


def tls_options(certs, cert=None, key=None) -> list[str]:
    return [f"mqtt.ca_file={certs.ca}", f"mqtt.cert_file={cert or certs.client_cert}",
            f"mqtt.key_file={key or certs.client_key}"]


def test_a_device_with_a_client_certificate_takes_a_roll_out_over_tls(broker, certs, fleet_device):
    device = fleet_device("pine1", *tls_options(certs), wait_online=False)
    # wait_online's watcher speaks plain MQTT: ask the daemon instead.
    deadline = time.monotonic() + 30
    while not device.daemon.client().stats()["mqtt"]["connected"]:
        assert time.monotonic() < deadline, device.daemon.log()
        time.sleep(0.05)
    tls = ["--ca-file", str(certs.ca), "--cert-file", str(certs.client_cert), "--key-file", str(certs.client_key)]
    done = fleet_cli(broker, "install", "tool-a", "--devices", "pine1", "--wait-timeout", "30", *tls)
    assert done.returncode == 0, done.stdout + done.stderr
    assert fleet_cli(broker, "status", rollout_id_of(done.stdout), *tls).returncode == 0
    assert device.installs("tool-a") == 1


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_without_a_certificate_from_the_ca_nobody_gets_in(broker, certs, fleet_device, who):
    options = [f"mqtt.ca_file={certs.ca}"] if who == "no certificate" else \
        tls_options(certs, certs.stranger_cert, certs.stranger_key)
    device = fleet_device("pine1", *options, wait_online=False)
    client = device.daemon.client()
    deadline = time.monotonic() + 3  # a few reconnect attempts
    while time.monotonic() < deadline:
        assert client.stats()["mqtt"]["connected"] is False
        time.sleep(0.1)
    cli = ["--ca-file", str(certs.ca)] if who == "no certificate" else \
        ["--ca-file", str(certs.ca), "--cert-file", str(certs.stranger_cert), "--key-file", str(certs.stranger_key)]
    refused = fleet_cli(broker, "install", "tool-a", "--devices", "pine1", "--wait-timeout", "5", *cli)
    assert refused.returncode == 3 and "pineapple-jobs:" in refused.stderr
    assert device.installs("tool-a") == 0


def test_a_key_file_without_a_cert_file_stops_the_daemon(certs, start_daemon):
    with pytest.raises(RuntimeError) as err:
        start_daemon(["--set", "mqtt.enabled=1", "--set", f"mqtt.key_file={certs.client_key}"])
    assert "mqtt.key_file needs mqtt.cert_file" in str(err.value)
