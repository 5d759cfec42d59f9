#!/usr/bin/env python3
"""A grab-bag backend in the style of wpasec, MACInfo and community modules:
every remaining name of Hak5's library, each behind one action."""
import logging
import os

import pineapple.helpers.notification_helpers as notifier
from pineapple.helpers import get_version, json_to_bytes
from pineapple.helpers import opkg_helpers as opkg
from pineapple.helpers.command_helpers import grep_output
from pineapple.helpers.helpers import json_to_bytes as json_to_bytes_by_path
from pineapple.helpers.network_helpers import check_for_internet
from pineapple.helpers.uci_helpers import uci_get, uci_set
from pineapple.jobs import Job
from pineapple.jobs.job_manager import JobManager
from pineapple.jobs.job_runner import JobRunner
from pineapple.logger import PrettyFormatter, get_logger
from pineapple.logger.pretty_formatter import PrettyFormatter as PrettyFormatterByPath
from pineapple.modules import Module, Request

VERSION_FILE = os.environ.get('TOOLBOX_VERSION_FILE', '/etc/pineapple/version')
STATE = os.environ.get('TOOLBOX_HOME', '/root/.toolbox')


class ToolboxModule(Module):
    def shutdown(self, sig=None, frame=None):
        with open(os.path.join(STATE, 'shutdown-signal'), 'w') as f:
            f.write(str(sig))
        super().shutdown(sig, frame)


module = ToolboxModule('toolbox', logging.INFO)
jobs = JobManager('toolbox', logging.DEBUG)  # no module: the toolbox polls its own jobs
helper_logger = get_logger('toolbox-helpers', logging.INFO, log_to_file=True, console_logger_level=logging.DEBUG)


class Echo(Job[str]):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def do_work(self, logger):
        return self.text


def _started():
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, 'started'), 'w') as f:
        f.write('yes')


module.register_startup_handler(_started)


@module.on_shutdown()
def _no_argument_handler():
    with open(os.path.join(STATE, 'no-argument-handler-ran'), 'w') as f:
        f.write('yes')


def _fields(request: Request):
    return {'dict_get': request.__dict__.get('who', 'nobody'), 'getattr': getattr(request, 'who', 'nobody'),
            'keys': sorted(request.__dict__)}


module.register_action_handler('fields', _fields)


@module.handles_action('bytes')
def _bytes(request: Request):
    return [json_to_bytes({'a': 1}).decode(), json_to_bytes_by_path([1]).decode(),
            PrettyFormatter is PrettyFormatterByPath]


@module.handles_action('version')
def _version(request: Request):
    version, build = get_version(VERSION_FILE)
    return {'version': version, 'build': build}


@module.handles_action('internet')
def _internet(request: Request):
    return check_for_internet(request.url, timout=5)


@module.handles_action('grep')
def _grep(request: Request):
    return grep_output(request.command, request.text).decode()


@module.handles_action('uci')
def _uci(request: Request):
    if getattr(request, 'value', None) is not None:
        return uci_set(request.key, request.value)
    return uci_get(request.key)


@module.handles_action('notify')
def _notify(request: Request):
    levels = {'success': notifier.SUCCESS, 'warn': notifier.WARN, 'other': notifier.OTHER}
    return module.send_notification(request.message, levels[request.level])


@module.handles_action('echo_job')
def _echo_job(request: Request):
    return jobs.execute_job(Echo(request.text))


@module.handles_action('poll_echo')
def _poll_echo(request: Request):
    runner = jobs.jobs.get(request.job_id)
    if runner is None:
        return 'No job found by that id.', False
    return {'is_runner': isinstance(runner, JobRunner), 'is_complete': runner.job.is_complete,
            'result': runner.job.result, 'manager': jobs.name}


@module.handles_action('remove_package')
def _remove_package(request: Request):
    return list(opkg.uninstall_dependency(request.package, module.logger))


@module.handles_action('update_lists')
def _update_lists(request: Request):
    return list(opkg.update_repository(module.logger))


@module.handles_action('log_line')
def _log_line(request: Request):
    helper_logger.info('toolbox says %s', request.text)
    module.logger.info('module log: %s', request.text)
    return True


if __name__ == '__main__':
    module.start()
