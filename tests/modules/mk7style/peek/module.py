#!/usr/bin/env python3
"""A sniffer backend written the way Hak5's httpeek one is: one job that
never ends by itself."""
import logging
import subprocess
import sys
from logging import Logger

from pineapple.jobs import Job, JobManager
from pineapple.jobs.job import TResult
from pineapple.modules import Module, Request

module = Module('peek', logging.DEBUG)
job_manager = JobManager('peek', logging.DEBUG, module=module)


class SnifferJob(Job[TResult]):
    def __init__(self):
        super().__init__()
        self.proc = None

    def do_work(self, logger: Logger) -> TResult:
        logger.debug('sniffer starting')
        self.proc = subprocess.Popen([sys.executable, '-c', 'import time\nwhile True: time.sleep(1)'])
        self.proc.wait()
        return True

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()


def _sniffer_running() -> bool:
    for jid, runner in job_manager.jobs.items():
        if isinstance(runner.job, SnifferJob):
            if runner.job.is_complete:
                job_manager.remove_job(jid)
                return False
            return True
    return False


@module.on_shutdown()
def _stop_sniffer(signal: int = None):
    for _jid, runner in job_manager.jobs.items():
        if isinstance(runner.job, SnifferJob):
            runner.job.stop()


@module.handles_action('start')
def start(request: Request):
    if _sniffer_running():
        return 'already running', False
    return job_manager.execute_job(SnifferJob())


@module.handles_action('stop')
def stop(request: Request):
    _stop_sniffer()
    return True


def _sniffing() -> bool:
    # A job counts as running once registered, before do_work has started
    # its process: a stop in that window has nothing to terminate yet.
    return any(isinstance(r.job, SnifferJob) and r.job.proc is not None for r in job_manager.jobs.values())


@module.handles_action('status')
def status(request: Request):
    return {'running': _sniffer_running(), 'jobs': len(job_manager.jobs), 'sniffing': _sniffing()}


if __name__ == '__main__':
    module.start()
