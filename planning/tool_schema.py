"""Argument models for tools defined by a JSON Schema, as MCP servers and other systems publish them.

A tool from another system arrives as a name, a description and an `inputSchema` (a JSON Schema of
an object). The args model built here keeps every parameter under the name the other system gave
it (the pydantic field may differ; the parameter's own name is its alias), shows each parameter's
own schema to reply schemas and prompts, and validates every value against that schema with the
`jsonschema` library. An optional parameter given `null` counts as not given (the planner writes
null for an optional parameter the request does not state).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import jsonschema
import jsonschema.validators
from jsonschema.exceptions import best_match
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

# MCP's tool-name rule: 1-128 characters of ASCII letters, digits, `_`, `-` and `.`.
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# A parameter a model can write as a JSON key and read in a prompt.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Keywords that constrain the object as a whole (checked once all its parameters are).
_OBJECT_KEYWORDS = frozenset(
    {"allOf", "anyOf", "oneOf", "not", "if", "dependentRequired", "dependencies", "minProperties", "maxProperties"}
)
_MAX_INLINE_DEPTH = 8


class ToolSchemaError(ValueError):
    """A tool definition that cannot be used as given; the message names the tool and the fix."""


def check_tool_name(name: str) -> None:
    if not TOOL_NAME.fullmatch(name):
        raise ToolSchemaError(
            f"tool name {name!r} is not usable: use 1-128 ASCII letters, digits, '_', '-' or '.' (MCP's rule)"
        )


def args_model_from_schema(tool: str, schema: Mapping[str, Any]) -> type[BaseModel]:
    """The pydantic model of a tool's arguments, validating with `schema` (raises ToolSchemaError)."""
    check_tool_name(tool)
    schema = dict(schema)
    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ToolSchemaError(f"tool {tool!r}: its inputSchema is not a valid JSON Schema ({exc.message})") from None
    if schema.get("type", "object") != "object":
        raise ToolSchemaError(f"tool {tool!r}: its inputSchema must describe an object of named arguments")
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    definitions = {key: schema[key] for key in ("$defs", "definitions") if key in schema}
    fields: dict[str, Any] = {}
    for index, (name, prop) in enumerate(properties.items()):
        if not PARAMETER_NAME.fullmatch(name):
            raise ToolSchemaError(
                f"tool {tool!r}: parameter {name!r} cannot be written by a model as it is named; "
                "use 1-64 ASCII letters, digits, '_', '-' or '.', starting with a letter or '_'"
            )
        shown = _inline(prop, definitions, _MAX_INLINE_DEPTH)
        check = _checker(validator_class, definitions, name, prop, optional=name not in required)
        if name in required:
            annotation = Annotated[JsonValue, WithJsonSchema(shown), AfterValidator(check)]
            default: Any = ...
        else:
            nullable = {"anyOf": [shown, {"type": "null"}]} if shown else {}
            annotation = Annotated[JsonValue, WithJsonSchema(nullable), AfterValidator(check)]
            default = None
        fields[_field_name(index, name)] = (annotation, Field(default, alias=name))
    whole = validator_class(schema)

    def check_object(model: BaseModel) -> BaseModel:
        given = {k: v for k, v in model.model_dump(by_alias=True, exclude_unset=True).items() if v is not None}
        errors = [e for e in whole.iter_errors(given) if not e.path and e.validator in _OBJECT_KEYWORDS]
        if errors:
            raise PydanticCustomError("json_schema", "{message}", {"message": _message(best_match(errors))})
        return model

    return create_model(
        f"{tool}_args",
        __config__=ConfigDict(extra="forbid", title=f"{tool} arguments", validate_by_name=False),
        __validators__={"check_object": model_validator(mode="after")(check_object)},  # type: ignore[dict-item]
        **fields,
    )


def given_arguments(model: BaseModel) -> dict[str, JsonValue]:
    """The arguments as the other system names them, without optional ones left out or null."""
    required = {info.alias or name for name, info in type(model).model_fields.items() if info.is_required()}
    return {
        key: value
        for key, value in model.model_dump(mode="json", by_alias=True, exclude_unset=True).items()
        if value is not None or key in required
    }


def _field_name(index: int, name: str) -> str:
    """pydantic keeps `_x` names private and refuses names of its own (`json`, `model_config`):
    such parameters live under a neutral field name, their own name being the alias."""
    if name.isidentifier() and not name.startswith(("_", "model_")) and not hasattr(BaseModel, name):
        return name
    return f"param_{index}"


def _checker(validator_class: Any, definitions: dict[str, Any], name: str, prop: Any, *, optional: bool) -> Any:
    # The parameter's schema inside an object that keeps the definitions its `$ref`s point to.
    validator = validator_class({**definitions, "type": "object", "properties": {name: prop}})

    def check(value: JsonValue) -> JsonValue:
        if value is None and optional:
            return value  # not given
        errors = list(validator.iter_errors({name: value}))
        if errors:
            raise PydanticCustomError("json_schema", "{message}", {"message": _message(best_match(errors))})
        return value

    return check


def _message(error: jsonschema.ValidationError) -> str:
    return error.message if len(error.message) <= 300 else error.message[:299] + "…"


def _inline(schema: Any, definitions: dict[str, Any], depth: int) -> Any:
    """`schema` with local `$ref`s replaced by their definitions (a reply schema holds no `$defs`);
    beyond `depth` (recursive definitions) a reference becomes `{}`: any value, checked at validation."""
    if isinstance(schema, list):
        return [_inline(item, definitions, depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref")
    if isinstance(reference, str):
        target = _resolve(reference, definitions)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        if target is None or depth <= 0:
            return rest
        return {**_inline(target, definitions, depth - 1), **_inline(rest, definitions, depth)}
    return {k: _inline(v, definitions, depth) for k, v in schema.items() if k not in ("$defs", "definitions")}


def _resolve(reference: str, definitions: dict[str, Any]) -> Any:
    for prefix in ("#/$defs/", "#/definitions/"):
        if reference.startswith(prefix):
            return definitions.get(prefix[2:-1], {}).get(reference.removeprefix(prefix))
    return None
