from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DockerPrerequisites(_message.Message):
    __slots__ = ("image", "tag")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    image: str
    tag: str
    def __init__(self, image: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...
