# bash completion for giltrace: `make install` puts it in
# PREFIX/share/bash-completion/completions/giltrace, where bash-completion
# finds it; or `source` this file.  Commands first, then each command's
# options, then files (traces, folders, the command to run after --).

_giltrace()
{
	local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} i
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W "run stress check report timeline export dump version help --help --version" -- "$cur"))
		return
	fi
	# after --: the command to run and its arguments
	for ((i = 2; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} == -- ]]; then
			if ((COMP_CWORD == i + 1)); then
				COMPREPLY=($(compgen -c -- "$cur"))
			else
				COMPREPLY=($(compgen -f -- "$cur"))
			fi
			return
		fi
	done
	local opts
	case $cmd in
	run) opts="-o --output --mode --ring-size --check --verbose --timeout --exit-timeout --timeout-signal --provoke --help" ;;
	stress) opts="-n --runs --until-fail --duration -j --timeout --exit-timeout --expect-status -o --keep --json --mode --ring-size --provoke --help" ;;
	check) opts="--json --min-severity --quiet-if-clean --help" ;;
	report) opts="--json --html --around --from --to --help" ;;
	timeline) opts="--around --from --to --width --color --help" ;;
	export) opts="-o --output -f --format --help" ;;
	dump) opts="--help" ;;
	*) return ;;
	esac
	case ${COMP_WORDS[COMP_CWORD - 1]} in
	--mode) COMPREPLY=($(compgen -W "full ring" -- "$cur")); return ;;
	--around) COMPREPLY=($(compgen -W "finalize whole" -- "$cur")); return ;;
	--color) COMPREPLY=($(compgen -W "auto always never" -- "$cur")); return ;;
	--keep) COMPREPLY=($(compgen -W "failed all" -- "$cur")); return ;;
	--min-severity) COMPREPLY=($(compgen -W "error note" -- "$cur")); return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _giltrace giltrace
