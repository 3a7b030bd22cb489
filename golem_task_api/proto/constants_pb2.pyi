from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
TASK_INPUTS_DIR_FIELD_NUMBER: _ClassVar[int]
TASK_INPUTS_DIR: _descriptor.FieldDescriptor
TASK_OUTPUTS_DIR_FIELD_NUMBER: _ClassVar[int]
TASK_OUTPUTS_DIR: _descriptor.FieldDescriptor
SUBTASK_INPUTS_DIR_FIELD_NUMBER: _ClassVar[int]
SUBTASK_INPUTS_DIR: _descriptor.FieldDescriptor
SUBTASK_OUTPUTS_DIR_FIELD_NUMBER: _ClassVar[int]
SUBTASK_OUTPUTS_DIR: _descriptor.FieldDescriptor
WORK_DIR_FIELD_NUMBER: _ClassVar[int]
WORK_DIR: _descriptor.FieldDescriptor
