"""Find pipeline components by name: built-ins and plugins from entry points.

A :class:`Registry` is an ordinary immutable object: build one with
:meth:`Registry.builtins` or :meth:`Registry.discover`, add to it with
:meth:`Registry.with_plugin`, and pass it where names must be resolved (the
TOML config loader, the CLI).  There is no process-global registry.

A third-party distribution publishes a component under one of the groups
``finetune_web.sources``, ``finetune_web.transforms``, ``finetune_web.packers``,
``finetune_web.backends`` or ``finetune_web.evaluators``; the entry point names
a factory (usually the class) called with the component's options.
"""

from __future__ import annotations

import difflib
import enum
import inspect
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any

import attrs

from finetune_web.errors import ConfigError, PluginError
from finetune_web.interfaces import Backend, Evaluator, Packer, Source, Transformer

__all__ = ["Family", "PluginInfo", "Registry"]


class Family(enum.Enum):
    """The five kinds of pluggable components."""

    SOURCES = "sources"
    TRANSFORMS = "transforms"
    PACKERS = "packers"
    BACKENDS = "backends"
    EVALUATORS = "evaluators"

    @property
    def group(self) -> str:
        """The entry-point group plugins of this family publish under."""
        return f"finetune_web.{self.value}"

    @property
    def protocol(self) -> type:
        """The interface components of this family satisfy."""
        return _PROTOCOLS[self]


_PROTOCOLS: dict[Family, type] = {
    Family.SOURCES: Source,
    Family.TRANSFORMS: Transformer,
    Family.PACKERS: Packer,
    Family.BACKENDS: Backend,
    Family.EVALUATORS: Evaluator,
}

_BUILTINS: dict[Family, dict[str, str]] = {
    Family.SOURCES: {
        "brightdata": "finetune_web.sources:BrightDataSource",
        "chat_jsonl": "finetune_web.sources.datasets:ChatJsonlSource",
        "csv": "finetune_web.sources:CsvSource",
        "dpo_jsonl": "finetune_web.sources.datasets:DpoJsonlSource",
        "html_files": "finetune_web.sources:HtmlFileSource",
        "http": "finetune_web.sources:HttpSource",
        "json": "finetune_web.sources:JsonSource",
        "jsonl": "finetune_web.sources:JsonlSource",
        "transcripts": "finetune_web.sources:TranscriptSource",
    },
    Family.TRANSFORMS: {
        "article_qa": "finetune_web.transforms.article_qa:ArticleToQA",
        "clean": "finetune_web.transforms.clean:CleanText",
        "exact_dedup": "finetune_web.transforms.dedup:ExactDedup",
        "extract": "finetune_web.transforms.extract:ExtractMainText",
        "keep_if": "finetune_web.transforms.adapters:KeepIf",
        "language": "finetune_web.transforms.language:LanguageFilter",
        "map": "finetune_web.transforms.adapters:MapRecords",
        "mix": "finetune_web.transforms.mix:MixWith",
        "near_dedup": "finetune_web.transforms.near_dedup:NearDedup",
        "passage_examples": "finetune_web.transforms.passages:PassageToExamples",
        "product_description": "finetune_web.transforms.product:ProductToDescription",
        "quality": "finetune_web.transforms.quality:QualityFilter",
        "redact_pii": "finetune_web.transforms.pii:RedactPII",
        "split": "finetune_web.transforms.split:HashSplit",
        "template": "finetune_web.transforms.template:TemplateTransformer",
        "truncate": "finetune_web.transforms.truncate:TruncateToTokens",
    },
    Family.PACKERS: {
        "best_fit": "finetune_web.packing:BestFitPacker",
    },
    Family.BACKENDS: {
        "local": "finetune_web.backends.local:LocalPEFTBackend",
        "openai": "finetune_web.backends:OpenAIBackend",
    },
    Family.EVALUATORS: {
        "bleu": "finetune_web.evaluation:BleuEvaluator",
        "chrf": "finetune_web.evaluation:ChrfEvaluator",
        "exact_match": "finetune_web.evaluation:ExactMatchEvaluator",
        "exact_match_normalized": "finetune_web.evaluation:ExactMatchEvaluator.normalized",
        "judge": "finetune_web.evaluation:JudgeEvaluator",
        "loglik_acc": "finetune_web.evaluation:LogLikelihoodChoiceEvaluator",
        "loglik_acc_norm": "finetune_web.evaluation:LogLikelihoodChoiceEvaluator.normalized",
        "multiple_choice": "finetune_web.evaluation:MultipleChoiceEvaluator",
        "rouge": "finetune_web.evaluation:RougeEvaluator",
        "token_accuracy": "finetune_web.evaluation:TokenLossEvaluator.accuracy",
        "token_loss": "finetune_web.evaluation:TokenLossEvaluator",
    },
}


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One registered component.

    Attributes:
        family: which interface it implements.
        name: the name used in configs.
        target: ``"module:attribute"`` of the factory, or the factory itself.
        distribution: the installed distribution that published it, if any.
    """

    family: Family
    name: str
    target: str | Callable[..., object] = attrs.field(eq=False)
    distribution: str | None = None

    def load(self) -> Callable[..., object]:
        """Import and return the factory.

        Raises:
            PluginError: the module or attribute cannot be imported.
        """
        if not isinstance(self.target, str):
            return self.target
        try:
            loaded: Callable[..., object] = metadata.EntryPoint(
                name=self.name, value=self.target, group=self.family.group
            ).load()
        except Exception as exc:  # any import-time failure of third-party code
            origin = f" from {self.distribution}" if self.distribution else ""
            raise PluginError(
                f"cannot load {self.family.value} plugin {self.name!r}{origin} "
                f"({self.target}): {type(exc).__name__}: {exc}"
            ) from exc
        return loaded


def _accepted_options(factory: Callable[..., object]) -> list[str]:
    if isinstance(factory, type) and attrs.has(factory):
        return [f.alias for f in attrs.fields(factory) if f.init]
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]


@attrs.frozen
class Registry:
    """An immutable map from (family, name) to component factories."""

    _plugins: dict[tuple[Family, str], PluginInfo] = attrs.field(factory=dict)

    @classmethod
    def builtins(cls) -> Registry:
        """Return a registry holding only finetune_web's own components."""
        plugins = {
            (family, name): PluginInfo(family=family, name=name, target=target)
            for family, names in _BUILTINS.items()
            for name, target in names.items()
        }
        return cls(plugins)

    @classmethod
    def discover(cls, *, path: Iterable[str] | None = None, builtins: bool = True) -> Registry:
        """Return a registry with the built-ins and every installed plugin.

        Args:
            path: directories to search for distributions instead of ``sys.path``.
            builtins: include finetune_web's own components.

        Raises:
            PluginError: two distributions publish the same family and name.
        """
        registry = cls.builtins() if builtins else cls()
        plugins = dict(registry._plugins)
        distributions = (
            metadata.distributions(path=list(path))
            if path is not None
            else metadata.distributions()
        )
        for distribution in distributions:
            dist_name = distribution.metadata["Name"]
            if dist_name is None or dist_name.replace("_", "-") == "finetune-web":
                continue
            for entry_point in distribution.entry_points:
                family = _family_of_group(entry_point.group)
                if family is None:
                    continue
                key = (family, entry_point.name)
                known = plugins.get(key)
                if known is not None and known.distribution is not None:
                    raise PluginError(
                        f"{family.value} plugin {entry_point.name!r} is published by both "
                        f"{known.distribution} and {dist_name}; uninstall one"
                    )
                plugins[key] = PluginInfo(
                    family=family,
                    name=entry_point.name,
                    target=entry_point.value,
                    distribution=dist_name,
                )
        return cls(plugins)

    def with_plugin(
        self, family: Family, name: str, factory: Callable[..., object] | str
    ) -> Registry:
        """Return a new registry where ``name`` maps to ``factory``."""
        plugins = dict(self._plugins)
        plugins[(family, name)] = PluginInfo(family=family, name=name, target=factory)
        return Registry(plugins)

    def names(self, family: Family) -> tuple[str, ...]:
        """Return the sorted names registered for ``family``."""
        return tuple(sorted(name for fam, name in self._plugins if fam is family))

    def info(self, family: Family, name: str) -> PluginInfo:
        """Return the registration of ``name``.

        Raises:
            PluginError: nothing is registered under that name (close names are suggested).
        """
        try:
            return self._plugins[(family, name)]
        except KeyError:
            known = self.names(family)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise PluginError(
                f"no {family.value} component named {name!r}{hint} "
                f"(known: {', '.join(known) or 'none'})"
            ) from None

    def create(self, family: Family, name: str, options: Mapping[str, Any]) -> object:
        """Build the component ``name`` with ``options`` and check its interface.

        Raises:
            ConfigError: an option is unknown or has a bad value.
            PluginError: the component is unknown or does not satisfy the interface.
        """
        factory = self.info(family, name).load()
        accepted = _accepted_options(factory)
        unknown = sorted(set(options) - set(accepted)) if accepted else []
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {family.value} "
                f"{name!r}; accepted: {', '.join(accepted)}"
            )
        try:
            component = factory(**options)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad options for {family.value} {name!r}: {exc}") from exc
        if not isinstance(component, family.protocol):
            raise PluginError(
                f"{family.value} component {name!r} built a {type(component).__name__}, "
                f"which does not implement {family.protocol.__name__}"
            )
        return component


def _family_of_group(group: str) -> Family | None:
    for family in Family:
        if family.group == group:
            return family
    return None
