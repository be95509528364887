"""The typed stack config: models, loading and validation. See the README's config reference."""

from stacks.config.base import ConfigError, Issue, key_path
from stacks.config.loader import decode, engine_config_from_file, from_pulumi, parse
from stacks.config.stack import StackConfig

__all__ = ["ConfigError", "Issue", "StackConfig", "decode", "engine_config_from_file", "from_pulumi", "key_path", "parse"]
