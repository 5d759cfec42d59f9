#!/usr/bin/env python3
"""A packet-capture backend written the way Hak5's tcpdump/nmap/mdk4 ones are."""
import logging
import os
import pathlib
import subprocess
import sys
from datetime import datetime
from typing import Optional

import pineapple.helpers.notification_helpers as notifier
from pineapple.helpers import network_helpers as net
from pineapple.helpers import opkg_helpers as opkg
from pineapple.helpers.opkg_helpers import OpkgJob
from pineapple.jobs import Job, JobManager
from pineapple.modules import Module, Request

PACKAGE = os.environ.get('CAPTURE_PACKAGE', 'myapp')
HISTORY = pathlib.Path(os.environ.get('CAPTURE_HOME', '/root/.capture'))
ENDLESS = 'import time\nwhile True:\n    print("packet", flush=True)\n    time.sleep(0.05)\n'

module = Module('capture', logging.DEBUG)
job_manager = JobManager(name='capture', module=module, log_level=logging.DEBUG)


class CaptureJob(Job[bool]):
    """Runs until stopped, like a tcpdump capture."""

    def __init__(self, file_name: str):
        super().__init__()
        self.file_name = file_name
        self.proc = None

    def do_work(self, logger: logging.Logger) -> bool:
        logger.debug('capture starting')
        with open(HISTORY / self.file_name, 'w') as output:
            self.proc = subprocess.Popen([sys.executable, '-c', ENDLESS], stdout=output)
            self.proc.wait()
        return True

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()


class MonitorJob(Job[bool]):
    """Fails the mdk4 way: sets self.error and returns."""

    def do_work(self, logger: logging.Logger) -> bool:
        self.error = 'Error starting monitor mode for input interface.'
        return False


def _last_job() -> dict:
    job_id: Optional[str] = None
    job_type: Optional[str] = None
    job_info: Optional[str] = None
    if len(job_manager.jobs) > 0:
        job_id = list(job_manager.jobs.keys())[-1]
        last = job_manager.get_job(job_id, remove_if_complete=False)
        if type(last) is CaptureJob:
            job_type, job_info = 'pcap', last.file_name
        elif type(last) is OpkgJob:
            job_type = 'opkg'
        else:
            job_type = 'unknown'
    return {'job_id': job_id, 'job_type': job_type, 'job_info': job_info}


def _installed(job: OpkgJob):
    if not job.was_successful:
        module.send_notification(job.error, notifier.ERROR)
    elif job.install:
        module.send_notification('Capture finished installing.', notifier.INFO)


@module.on_start()
def make_history_directory():
    if not HISTORY.exists():
        HISTORY.mkdir(parents=True)


@module.on_shutdown()
def stop_captures(signal: int = None):
    running = list(filter(lambda runner: runner.running is True, job_manager.jobs.values()))
    for runner in running:
        if type(runner.job) is CaptureJob:
            job_manager.stop_job(job=runner.job)


@module.handles_action('check_dependencies')
def check_dependencies(request: Request):
    return opkg.check_if_installed(PACKAGE, module.logger)


@module.handles_action('manage_dependencies')
def manage_dependencies(request: Request):
    job = OpkgJob(PACKAGE, request.install)
    return {'job_id': job_manager.execute_job(job, callbacks=[_installed])}


@module.handles_action('start_capture')
def start_capture(request: Request):
    file_name = f"{datetime.now().strftime('%Y-%m-%dT%H-%M-%S.%f')}.pcap"
    return {'job_id': job_manager.execute_job(CaptureJob(file_name)), 'output_file': file_name}


@module.handles_action('start_monitor')
def start_monitor(request: Request):
    return {'job_id': job_manager.execute_job(MonitorJob())}


@module.handles_action('stop_capture')
def stop_capture(request: Request):
    return job_manager.stop_job(job_id=request.job_id)


@module.handles_action('running')
def running(request: Request):
    return len(list(filter(lambda runner: runner.running is True, job_manager.jobs.values())))


@module.handles_action('rebind_last_job')
def rebind_last_job(request: Request):
    if len(job_manager.jobs) >= 1:
        last_id = list(job_manager.jobs.keys())[-1]
        if type(job_manager.jobs[last_id].job) is CaptureJob:
            return {'job_id': last_id, 'job_type': 'pcap', 'job_info': job_manager.jobs[last_id].job.file_name}
        if type(job_manager.jobs[last_id].job) is OpkgJob:
            return {'job_id': last_id, 'job_type': 'opkg', 'job_info': None}
    return {'job_id': None, 'job_type': None, 'job_info': None}


@module.handles_action('startup')
def startup(request: Request):
    return {
        'has_dependencies': opkg.check_if_installed(PACKAGE, module.logger),
        'interfaces': net.get_interfaces(),
        'last_job': _last_job(),
    }


if __name__ == '__main__':
    module.start()
