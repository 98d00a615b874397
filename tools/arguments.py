"""Tool arguments: the signature is the only place their types and limits are written.

`args_model(function)` builds the pydantic model of a tool's arguments from its annotations
(`Annotated[..., Field(...)]` carries the limits). The catalog validates plan and agent arguments
with a model built from the same signature; `checked` makes a direct Python call go through the
model, so every way of calling a tool is held to the same limits and no tool body repeats them by
hand. A refused call raises `ToolArgumentsError` (a `ToolError`), one line per problem:
`max_results: Input should be less than or equal to 20 (got 21)`. The catalog, which validated the
arguments already, calls `unchecked(tool)`: each call is validated once.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model
from pydantic_core import ErrorDetails

from tools.errors import ToolArgumentsError

F = TypeVar("F", bound=Callable[..., Any])
_UNCHECKED = "__unchecked__"  # on a `checked` wrapper: the function it validates the calls of


def _refuse_bool(value: object) -> object:
    # pydantic's lax mode turns True into 1; a model sending a boolean for a number is a mistake.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}; pass a number such as 1 or 0")
    return value


# Put in a number's `Annotated[...]`: refuses booleans, which lax pydantic would read as 1 and 0.
NOT_BOOL = BeforeValidator(_refuse_bool)


def args_model(function: Callable[..., Any], name: str | None = None) -> type[BaseModel]:
    """The pydantic model of `function`'s arguments (extra arguments refused).

    A parameter named `self` (the tool is a method) is not an argument. Raises TypeError for
    signatures a model cannot describe: `*args`/`**kwargs` or an argument without a type annotation.
    """
    name = name or function.__name__
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for position, param in enumerate(inspect.signature(function).parameters.values()):
        if position == 0 and param.name == "self":
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {name!r}: *args/**kwargs cannot be described; name every argument")
        if param.name not in hints:
            raise TypeError(f"tool {name!r}: argument {param.name!r} needs a type annotation")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    return create_model(f"{name}_args", __config__=ConfigDict(extra="forbid", title=f"{name} arguments"), **fields)


def format_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """pydantic errors as short readable lines: `args.b: Input should be a valid number (got 'x')`."""
    return format_errors(error.errors(include_url=False), prefix)


def format_errors(errors: Iterable[ErrorDetails], prefix: str = "") -> list[str]:
    """Some of a ValidationError's `errors()` as lines, like format_validation_error."""
    lines = []
    for item in errors:
        where = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        if item["type"] == "value_error":  # a validator's own words, which name the value
            lines.append(f"{where or 'value'}: {item['msg'].removeprefix('Value error, ')}")
            continue
        got = "" if item["type"] == "missing" else f" (got {_short_repr(item.get('input'))})"
        lines.append(f"{where or 'value'}: {item['msg']}{got}")
    return lines


def _short_repr(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 128:  # repr of a huge int may even raise
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    return f"{value!r:.80}"


def checked(function: F) -> F:
    """Validate every call of the tool `function` with `args_model(function)`.

    Arguments are converted as the model converts them (lax pydantic: `"5"` for an int is 5) and
    defaults filled in; anything the model refuses raises `ToolArgumentsError` before the body runs.
    Works for functions and methods (a first parameter named `self`), sync and async.
    """
    names = list(inspect.signature(function).parameters)
    is_method = names[:1] == ["self"]
    model: type[BaseModel] | None = None

    def validated(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        nonlocal model
        if model is None:  # built on first use: annotations may name classes defined further down
            model = args_model(function)
        if len(args) > len(names):
            raise TypeError(f"{function.__name__}() takes {len(names)} positional arguments but {len(args)} were given")
        # Missing and unknown names are the model's to report, like every other argument problem.
        arguments = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in arguments:
                raise TypeError(f"{function.__name__}() got multiple values for argument {name!r}")
            arguments[name] = value
        instance = (arguments.pop("self"),) if is_method else ()
        try:
            values = model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolArgumentsError(function.__name__, format_validation_error(exc)) from None
        return instance, {field: getattr(values, field) for field in type(values).model_fields}

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            instance, values = validated(args, kwargs)
            return await function(*instance, **values)

        wrapper: Callable[..., Any] = call_async
    else:

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            instance, values = validated(args, kwargs)
            return function(*instance, **values)

        wrapper = call
    setattr(wrapper, _UNCHECKED, function)
    return typing.cast("F", wrapper)


def unchecked(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function a `checked` tool validates the calls of (a bound method: bound to the same
    object), for a caller whose arguments went through the same signature's model already; any
    other function as it is."""
    if isinstance(function, types.MethodType):
        inner = getattr(function.__func__, _UNCHECKED, None)
        return function if inner is None else types.MethodType(inner, function.__self__)
    return getattr(function, _UNCHECKED, function)
