#!/usr/bin/env python3
"""A blocklist backend written the way Hak5's DenyIP one is: it installs its
dependency synchronously, inside a request."""
import logging
import os

import pineapple.helpers.opkg_helpers as opkg
from pineapple.modules import Module, Request

PACKAGE = os.environ.get('BLOCKLIST_PACKAGE', 'tool-b')

module = Module('blocklist', logging.DEBUG)


@module.handles_action('toolCheck')
def tool_check(request: Request):
    return 'ok' if opkg.check_if_installed(PACKAGE, module.logger) else 'Not installed'


@module.handles_action('toolInstall')
def tool_install(request: Request):
    success, message = opkg.install_dependency(PACKAGE, module.logger)
    return 'ok' if success else f'Error: {message}'


if __name__ == '__main__':
    module.start()
