"""Beam's fixed costs per landing, cut without changing what a pipeline computes.

``rda run`` builds and runs a small FnApiRunner pipeline for every batch it lands, so what Beam
does once per pipeline (or per DoFn, per stage) is paid every batch: at 1,000 records/s with a
1 s trigger it is a large part of a batch's landing. Each cut here leaves Beam's behaviour as
it is for any pipeline, DoFn or option this project does not make itself.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    PipelineOptionsT,
    _BeamArgumentParser,
)
from apache_beam.options.value_provider import ValueProvider
from apache_beam.runners.worker import statesampler
from apache_beam.transforms import userstate

# How often a bundle's state sampler looks at what the bundle does. Beam times each step with it
# (metrics nothing here reads) and stops it by joining its thread, which sleeps up to the period
# between looks: with Beam's 200 ms, a landing ended up to 200 ms after its last chunk (measured
# in the landing child: one batch of 101,920 records 1.43 s with 10 ms against 1.63 s; 8 batches
# of 12,740 records 3.00 against 3.19 s in all). Beam has no option for it: the period is its
# StateSampler's default argument, set in ``_sample_states_every``.
STATE_SAMPLING_PERIOD_MS = 10

DoFnClass = type[beam.DoFn]
_CLASS_SPECS: set[DoFnClass] = set()  # DoFn classes whose state and timer specs are the class's


class KeptViews(PipelineOptions):
    """Pipeline options whose view of each options class is made once, from a parser made once.

    Beam asks a pipeline's options for a view ~50 times a run (``TypeOptions`` at every
    transform applied, ``StandardOptions``, ``DebugOptions``…), and each ``view_as`` parses the
    flags again with a new argparse parser of that class: ~9 ms of a landing's ~45 ms fixed
    cost (measured on empty chunks). A view holds no value of its own (values live in the
    options' ``_all_options``, which every view shares), so the view made first serves as well
    as a new one.

    The first view of each class, in every pipeline, still built that class's parser: argparse
    formats each argument as it is added (a help formatter per argument, which looks up the
    terminal's size and the message catalogs), 0.4-1.4 ms a class, ~11 ms for the twelve a
    landing asks for. A parser of a class holds its arguments and their defaults only, so one
    made once per process parses the flags of every pipeline alike; defaults that are lists or
    dicts (``experiments``…) are copied into each options' values, as a parser made anew
    gave each its own.
    """

    def view_as(self, cls: type[PipelineOptionsT]) -> PipelineOptionsT:
        views = self.__dict__.get("_kept_views")
        if views is None:  # set past PipelineOptions.__setattr__, which takes option names only
            views = {}
            object.__setattr__(self, "_kept_views", views)
        view = views.get(cls)
        if view is None:
            view = views[cls] = self._new_view(cls)
        return view

    def __getstate__(self) -> dict[str, Any]:
        """Beam's state of the options, without the views: ``beam.Pipeline`` deep-copies the
        options it is given, and a view's copy asks for a new ``GoogleCloudOptions`` view of
        its own (Beam's ``__getstate__``), with a parser made anew each (~4.5 ms a landing). A
        copy makes its views when asked, as the options did."""
        state = super().__getstate__()
        return {name: value for name, value in state.items() if name != "_kept_views"}

    def _new_view(self, cls: type[PipelineOptionsT]) -> PipelineOptionsT:
        """What ``PipelineOptions.view_as`` makes, with the class's kept parser."""
        if cls.__init__ is not PipelineOptions.__init__:  # a class of its own making: Beam's way
            return super().view_as(cls)
        view = cls.__new__(cls)
        view._flags = self._flags  # PipelineOptions.__setattr__ keeps these three on the view
        view._visible_options, _ = _parser_of(cls).parse_known_args(self._flags)
        for name in view._visible_option_list():
            if name not in self._all_options:  # a value set earlier, or by another view, stays
                self._all_options[name] = _own(getattr(view._visible_options, name))
        view._all_options = self._all_options
        return view

    def get_all_options(
        self,
        drop_default: bool = False,
        add_extra_args_fn: Callable | None = None,
        retain_unknown_options: bool = False,
        display_warnings: bool = False,
        current_only: bool = False,
    ) -> dict[str, Any]:
        """Beam's ``get_all_options``, from a parser of every options class made once.

        Beam asks once a run (``Pipeline.run``, to warn of flags no class knows), and builds a
        parser of every options class each time (~8 ms). Flags every class knows, and no extra
        arguments, are taken here: the values Beam's would give (the options' own values over
        the parsed ones; with ``drop_default``, those equal to their default left out). Anything
        else — unknown flags to warn of or keep, extra arguments, one class only — Beam's."""
        if add_extra_args_fn is None and not current_only:
            parser = _parser_of_all()
            known, unknown = parser.parse_known_args(self._flags)
            if not unknown:
                return self._over_parsed(vars(known), parser, drop_default, retain_unknown_options)
        return super().get_all_options(
            drop_default, add_extra_args_fn, retain_unknown_options, display_warnings, current_only
        )

    def _over_parsed(
        self,
        parsed: dict[str, Any],
        parser: argparse.ArgumentParser,
        drop_default: bool,
        keep: bool,
    ) -> dict[str, Any]:
        """The tail of Beam's ``get_all_options`` (1.x): values set on the options win; options
        no class defines are kept with ``keep`` (Beam warns of them otherwise)."""
        result = {name: _own(value) for name, value in parsed.items()}
        overrides = dict(self._all_options)
        for name in list(result):
            overrides.pop(name, None)
            if name in self._all_options:
                result[name] = self._all_options[name]
            default = parser.get_default(name)
            if drop_default and default == result[name] and not isinstance(default, ValueProvider):
                del result[name]
        if overrides:
            if keep:
                result.update(overrides)
            else:
                _LOGGER.warning("Discarding invalid overrides: %s", overrides)
        return result


_PARSERS: dict[type, argparse.ArgumentParser] = {}  # options class -> its parser, made once
_ALL_PARSERS: dict[tuple[type, ...], argparse.ArgumentParser] = {}  # every class's, likewise
_LOGGER = logging.getLogger("apache_beam.options.pipeline_options")  # where Beam warns


def _parser_of(cls: type[PipelineOptions]) -> argparse.ArgumentParser:
    """The parser ``PipelineOptions.__init__`` builds for ``cls``: the arguments each class of
    its MRO adds, up to ``PipelineOptions``."""
    parser = _PARSERS.get(cls)
    if parser is None:
        parser = _BeamArgumentParser(allow_abbrev=False)
        for klass in cls.mro():
            if klass is PipelineOptions:
                break
            if "_add_argparse_args" in klass.__dict__:
                klass._add_argparse_args(parser)
        _PARSERS[cls] = parser
    return parser


def _parser_of_all() -> argparse.ArgumentParser:
    """The parser ``get_all_options`` builds: every options class's arguments (a class listed
    twice, by name, once), for the classes defined now."""
    classes: dict[str, type[PipelineOptions]] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    key = tuple(classes.values())
    parser = _ALL_PARSERS.get(key)
    if parser is None:
        parser = _BeamArgumentParser(allow_abbrev=False)
        for cls in key:
            cls._add_argparse_args(parser)
        _ALL_PARSERS.clear()  # the classes defined grow: only the latest set is asked for
        _ALL_PARSERS[key] = parser
    return parser


def _own(value: object) -> object:
    """A parsed value as a parser made anew would give it: a list or dict default of its own."""
    if type(value) is list:
        return list(value)
    if type(value) is dict:
        return dict(value)
    return value


def specs_of_class(cls: DoFnClass) -> DoFnClass:
    """Class decorator: Beam looks for the state and timer parameters of ``cls`` once, not in
    every instance each time it asks.

    Beam asks ``userstate.get_dofn_specs`` 8 times per DoFn per pipeline (at construction, in
    the runner's stage fusion, in the bundle's DoFn runner…), and each time it builds an
    ``inspect.signature`` of every method of the instance: 24 calls a landing of this graph's 3
    DoFns (a landing of four one-record chunks 207-213 ms before, 169-177 ms with each class
    looked at once; docs/pipeline.md, "Runners"). The specs come from the defaults of the
    methods' parameters, so they are the class's when the class alone defines its methods: for
    the DoFns of this project, not for Beam's wrappers of a callable (``beam.Map``), whose specs
    are their callable's. Beam's own check still runs, once per class; its errors are raised
    every time."""
    _CLASS_SPECS.add(cls)
    return cls


def _specs_once_per_class(get_specs: Callable) -> Callable:
    if getattr(get_specs, "specs_once_per_class", False):  # this module imported again
        return get_specs
    known: dict[DoFnClass, tuple[frozenset, frozenset]] = {}

    def get_dofn_specs(dofn: beam.DoFn) -> tuple[set, set]:
        cls = type(dofn)
        if cls not in _CLASS_SPECS:
            return get_specs(dofn)
        if cls not in known:
            states, timers = get_specs(dofn)
            known[cls] = frozenset(states), frozenset(timers)
        states, timers = known[cls]
        return set(states), set(timers)  # Beam's callers get sets of their own, as before

    get_dofn_specs.specs_once_per_class = True  # type: ignore[attr-defined]
    return get_dofn_specs


def _sample_states_every(period_ms: int) -> None:
    """Make ``period_ms`` the sampling period of the state samplers Beam makes from now on."""
    init = statesampler.StateSampler.__init__
    if init.__defaults__ is not None and len(init.__defaults__) == 1:  # (sampling_period_ms,)
        init.__defaults__ = (period_ms,)


_sample_states_every(STATE_SAMPLING_PERIOD_MS)
# Beam's callers look the function up in the module at each call (``userstate.get_dofn_specs``,
# and ``is_stateful_dofn`` through the module's globals), so replacing it there reaches them all.
userstate.get_dofn_specs = _specs_once_per_class(userstate.get_dofn_specs)
