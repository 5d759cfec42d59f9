#!/usr/bin/env python3
"""A captive-portal backend written the way Hak5's evilportal one is."""
import logging
import os
import pathlib

import pineapple.helpers.command_helpers as cmd
import pineapple.helpers.opkg_helpers as opkg
from pineapple.helpers.opkg_helpers import OpkgJob
from pineapple.jobs import JobManager
from pineapple.modules import Module, Request

PACKAGES = os.environ.get('PORTAL_PACKAGES', 'myapp tool-a').split()
STATE = pathlib.Path(os.environ.get('PORTAL_HOME', '/root/.portal'))

module = Module('portal', logging.DEBUG)
job_manager = JobManager('portal', module=module)


def _post_install(job: OpkgJob):
    marker = STATE / 'installed-marker'
    if job.install and job.was_successful:
        marker.write_text('yes')
    elif not job.install and job.was_successful and marker.exists():
        marker.unlink()


@module.on_start()
def _prepare():
    STATE.mkdir(parents=True, exist_ok=True)


@module.handles_action('check_dependencies')
def check_dependencies(request: Request):
    for job_id, runner in job_manager.jobs.items():
        if isinstance(runner.job, OpkgJob) and not runner.job.is_complete:
            return {'installed': False, 'installing': True, 'job_id': job_id}
    return {'installed': all(opkg.check_if_installed(p, module.logger) for p in PACKAGES),
            'installing': False, 'job_id': None}


@module.handles_action('manage_dependencies')
def manage_dependencies(request: Request):
    return {'job_id': job_manager.execute_job(OpkgJob(PACKAGES, request.install), callbacks=[_post_install])}


@module.handles_action('status')
def status(request: Request):
    return {
        'marker': (STATE / 'installed-marker').exists(),
        'listed': cmd.grep_output(f'ls {STATE}', 'marker') != b'',
        'python_running': cmd.check_for_process('python'),
    }


if __name__ == '__main__':
    module.start()
