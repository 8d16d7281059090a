# -*- coding: utf-8 -*-
# Copyright (c) 2026, Kaminario K2 collection contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Connection options shared by every module. Keep in step with
    # plugins/module_utils/k2_module.py:k2_argument_spec (a unit test compares them).
    DOCUMENTATION = r'''
options:
  k2_host:
    description:
      - Management address of the K2 array, as C(host) or C(host:port) (IPv6 with a port as C([addr]:port)); no C(https://) prefix.
      - With O(k2_token), the address of the Flex server that proxies the array.
      - If not set, the value of the E(K2_HOST) environment variable is used.
    type: str
    required: true
  k2_username:
    description:
      - K2 user for HTTP basic authentication.
      - Use together with O(k2_password); mutually exclusive with O(k2_token).
      - If not set, the value of the E(K2_USERNAME) environment variable is used, unless the task sets O(k2_token) or
        O(k2_sdp_id); the login method a task names wins over the other method's environment variables.
    type: str
  k2_password:
    description:
      - Password of O(k2_username).
      - If not set, the value of the E(K2_PASSWORD) environment variable is used.
    type: str
  k2_token:
    description:
      - Bearer token for access through Silk Flex; requests then go to C(/rest/sdps/<k2_sdp_id>/api/v2) on O(k2_host).
      - Use together with O(k2_sdp_id); mutually exclusive with O(k2_username) and O(k2_password).
      - If not set, the value of the E(K2_TOKEN) environment variable is used, unless the task sets O(k2_username) or
        O(k2_password).
    type: str
  k2_sdp_id:
    description:
      - Identifier of the array (SDP) behind Flex, used with O(k2_token).
      - If not set, the value of the E(K2_SDP_ID) environment variable is used.
    type: str
  validate_certs:
    description:
      - Whether to verify the array's TLS certificate.
      - Verification uses the system trust store (plus the certifi bundle that requests ships), or only O(ca_path) when it is set.
      - Setting this to V(false) makes the module warn; prefer O(ca_path) for arrays with a self-signed or in-house certificate.
      - If not set, the value of the E(K2_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file (or directory of hashed certificates) holding the CA that signed the array certificate.
      - When set, only these CAs are trusted.
      - If not set, the value of the E(K2_CA_PATH) environment variable is used.
    type: path
  timeout:
    description:
      - Longest time in seconds that one API call may take, including its retries and the waits between them.
    type: int
    default: 60
  retries:
    description:
      - How many times an API call is retried when the array is unreachable, answers HTTP 5xx or 429, or reports
        itself busy (C(MC_ERR_BUSY), C(MC_ERR_BUSY_SPECIFIC), C(MC_ERR_INPROGRESS), C(MC_ERR_START_TIMEOUT)).
      - Authentication, permission and validation errors are never retried.
      - A create whose answer was lost is not repeated blindly; the module first looks the object up by name.
    type: int
    default: 5
  retry_max_wait:
    description:
      - Upper bound in seconds of one wait between retries. Waits grow exponentially (about 1, 2, 4, 8... seconds, with random jitter) up to this value.
      - A C(Retry-After) delay sent by the array is honoured, also up to this value.
    type: int
    default: 30
  trace_file:
    description:
      - Append a JSON line per HTTP request and response to this file, for troubleshooting.
      - Passwords, tokens and C(Authorization) headers are replaced with C(********); the file is created with mode C(0600).
      - If not set, the value of the E(K2_TRACE_FILE) environment variable is used.
    type: path
notes:
  - All connection options can be set once per play with C(module_defaults) and the action group C(group/kaminario.k2.k2).
requirements:
  - requests >= 2.20 (Python library)
'''

    # For modules that change the array.
    ATTRIBUTES = r'''
attributes:
  check_mode:
    description: Can run in check mode and return the changed status and the planned actions without modifying the array.
    support: full
  diff_mode:
    description: Returns before and after views of every object the task changes (or would change, in check mode).
    support: full
  platform:
    description: Target the module operates on.
    support: full
    platforms: Kaminario K2
'''

    # For modules that also talk to the peer (secondary) array of a replication pair. A module sets
    # its own description (and required) for target; the suboptions come from here.
    TARGET = r'''
options:
  target:
    description:
      - Connection to the peer (secondary) array, with the same meaning as the module's own connection options.
    type: dict
    suboptions:
      k2_host:
        description: Management address of the peer array, C(host) or C(host:port).
        type: str
        required: true
      k2_username:
        description: User on the peer array (HTTP basic authentication); with O(target.k2_password).
        type: str
      k2_password:
        description: Password of O(target.k2_username).
        type: str
      k2_token:
        description: Bearer token for access through Silk Flex; with O(target.k2_sdp_id).
        type: str
      k2_sdp_id:
        description: Identifier of the peer array behind Flex.
        type: str
      validate_certs:
        description: Whether to verify the peer array's TLS certificate (warns when V(false)).
        type: bool
        default: true
      ca_path:
        description: CA file or directory that signed the peer array's certificate.
        type: path
      timeout:
        description: Longest time in seconds one API call to the peer may take, retries included.
        type: int
        default: 60
      retries:
        description: How many times an API call to the peer is retried on connection errors, 5xx, 429 and busy answers.
        type: int
        default: 5
      retry_max_wait:
        description: Upper bound in seconds of one wait between retries.
        type: int
        default: 30
'''

    # For modules that only read the array and return facts.
    FACTS_ATTRIBUTES = r'''
attributes:
  check_mode:
    description: Reads only, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Reads only; there is nothing to diff.
    support: N/A
  facts:
    description: Returns its results under C(ansible_facts).
    support: full
  platform:
    description: Target the module operates on.
    support: full
    platforms: Kaminario K2
'''
