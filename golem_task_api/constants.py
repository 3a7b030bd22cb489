"""Directory names and defaults shared by the node and the app."""
from __future__ import annotations

TASK_INPUTS_DIR = "task_inputs"
SUBTASK_INPUTS_DIR = "subtask_inputs"
TASK_OUTPUTS_DIR = "task_outputs"
SUBTASK_OUTPUTS_DIR = "subtask_outputs"
# The work dir inside an app container, relative to the file system root.
WORK_DIR = "golem/work"

DEFAULT_REQUESTOR_PORT = 50005
DEFAULT_PROVIDER_PORT = 50006

SERVER_KEY_FILE = "task_api_server_key.pem"
SERVER_CERT_FILE = "task_api_server_cert.pem"
CLIENT_KEY_FILE = "task_api_client_key.pem"
CLIENT_CERT_FILE = "task_api_client_cert.pem"

LOG_LEVEL_ENV_VAR = "GOLEM_TASK_API_LOG_LEVEL"
