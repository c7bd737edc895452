"""A fish completion script for `noderegistry`, generated from the parser itself as shtab does
for bash and zsh (shtab has no fish): every verb, option, choice and file argument.

Fish completes with `complete -c noderegistry -n CONDITION ...` lines. The condition here is the
command path typed so far (`admin push`), which a small function finds in the words of the
command line: the words that extend a known path, whatever options stand between them.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

FILE_METAVAR = "FILE"
_HELPER = """\
function __{name}_at --description 'Whether the {program} command typed so far is $argv[1]'
    set -l path ''
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; and continue
        set -l next (string trim -- "$path $word")
        contains -- $next $__{name}_commands; and set path $next
    end
    test "$path" = "$argv[1]"
end
"""


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _summary(help_text: str | None) -> str:
    """The first clause of a help text: what fish shows beside a candidate."""
    text = " ".join((help_text or "").split())
    if text == argparse.SUPPRESS:
        return ""
    return text.split("; ")[0].split(" (")[0][:80]


def _commands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _paths(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, its parser), the root's first."""
    yield path, parser
    commands = _commands(parser)
    if commands is not None:
        for name, verb in commands.choices.items():
            yield from _paths(verb, (*path, name))


def _option_line(program: str, condition: str, action: argparse.Action) -> str:
    words = [f"complete -c {program} -n {_quote(condition)}"]
    for flag in action.option_strings:
        if flag.startswith("--"):
            words.append(f"-l {flag[2:]}")
        elif len(flag) == 2:
            words.append(f"-s {flag[1]}")
        else:
            words.append(f"-o {flag[1:]}")
    if action.nargs != 0:  # takes a value
        if action.choices:
            words.append(f"-x -a {_quote(' '.join(map(str, action.choices)))}")
        elif action.metavar == FILE_METAVAR:
            words.append("-r -F")
        else:
            words.append("-x")
    summary = _summary(action.help)
    if summary:
        words.append(f"-d {_quote(summary)}")
    return " ".join(words)


def fish_script(root: argparse.ArgumentParser, program: str = "noderegistry") -> str:
    """The script: `noderegistry completion fish | source`, or save it as
    ~/.config/fish/completions/noderegistry.fish."""
    name = program.replace("-", "_")
    paths = list(_paths(root))
    lines = [
        f"# fish completion for {program}, generated from its parser: `{program} completion fish`",
        f"complete -c {program} -e",
        f"set -g __{name}_commands "
        + " ".join(_quote(" ".join(path)) for path, _ in paths if path),
        _HELPER.format(name=name, program=program),
    ]
    for path, parser in paths:
        condition = f"__{name}_at {_quote(' '.join(path))}"
        commands = _commands(parser)
        if commands is not None:
            helps = {choice.dest: choice.help for choice in commands._choices_actions}
            for verb in commands.choices:
                summary = _summary(helps.get(verb))
                describe = f" -d {_quote(summary)}" if summary else ""
                lines.append(
                    f"complete -c {program} -f -n {_quote(condition)} -a {_quote(verb)}{describe}"
                )
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if action.option_strings:
                lines.append(_option_line(program, condition, action))
            elif action.choices:
                choices = _quote(" ".join(map(str, action.choices)))
                lines.append(f"complete -c {program} -f -n {_quote(condition)} -a {choices}")
    return "\n".join(lines) + "\n"
