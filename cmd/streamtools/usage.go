package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v3"
)

// applyUsageRules gives cmd and every command below it the same answers to
// a wrong command line (newApp applies it to the whole tree, once):
//
//   - a command with subcommands refuses an unknown one and lists its
//     commands (urfave/cli printed "No help topic for 'x'" and exited 3);
//   - a command that takes no arguments (its ArgsUsage is blank) refuses
//     them, instead of ignoring them;
//   - a Required flag says so in the help;
//   - a usage error (a missing required flag, an unknown flag) is the
//     command's error, which main prints once, without the help: the
//     error names the command, and its --help says the rest.
func applyUsageRules(cmd *cli.Command) {
	for _, sub := range cmd.Commands {
		applyUsageRules(sub)
	}
	markRequired(cmd.Flags)
	cmd.OnUsageError = usageError
	switch {
	case len(cmd.Commands) > 0:
		cmd.Action = refuseUnknownCommand(cmd.Action)
	case strings.TrimSpace(cmd.ArgsUsage) == "" && cmd.Action != nil:
		cmd.Action = refuseArguments(cmd.Action)
	}
}

// commandPath is cmd's path below the root, "dashboard users create" (""
// for the root): main prefixes errors with "streamtools: " already.
func commandPath(cmd *cli.Command) string {
	return strings.Join(cmd.Path()[1:], " ")
}

// refuseUnknownCommand wraps the action of a command with subcommands
// (urfave/cli runs it when the first argument names none of them): without
// arguments it runs action, or shows the command's help when action is nil;
// with some, it says the first is no command of this one and lists those
// that are.
func refuseUnknownCommand(action cli.ActionFunc) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		if cmd.Args().Len() == 0 {
			switch {
			case action != nil:
				return action(ctx, cmd)
			case cmd.Root() == cmd:
				return cli.ShowAppHelp(cmd)
			default:
				return cli.ShowSubcommandHelp(cmd)
			}
		}
		var names []string
		for _, c := range cmd.VisibleCommands() {
			names = append(names, c.Name)
		}
		if cmd.Root() == cmd {
			return fmt.Errorf("unknown command %q; the commands are %s (%s --help says what each does)",
				cmd.Args().First(), strings.Join(names, ", "), cmd.FullName())
		}
		return fmt.Errorf("unknown command %q; the commands of %s are %s (%s --help says what each does)",
			commandPath(cmd)+" "+cmd.Args().First(), commandPath(cmd), strings.Join(names, ", "), cmd.FullName())
	}
}

// refuseArguments wraps the action of a command that takes flags only.
func refuseArguments(action cli.ActionFunc) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		if cmd.Args().Len() > 0 {
			return fmt.Errorf("%s takes no arguments, only flags: remove %q (%s --help lists the flags)",
				commandPath(cmd), strings.Join(cmd.Args().Slice(), " "), cmd.FullName())
		}
		return action(ctx, cmd)
	}
}

// usageError is every command's OnUsageError: the error, saying which
// command and where its flags are listed, for main to print once (without
// it urfave/cli printed the error, the whole help, and then main printed
// the error again).
func usageError(_ context.Context, cmd *cli.Command, err error, _ bool) error {
	name := commandPath(cmd)
	if name == "" {
		name = cmd.Name
	}
	if missing := missingRequired(cmd); len(missing) > 0 && strings.HasPrefix(err.Error(), "Required flag") {
		return fmt.Errorf("%s needs %s (%s --help says what each is)", name, joinAnd(missing), cmd.FullName())
	}
	return fmt.Errorf("%s: %w (%s --help lists the flags)", name, err, cmd.FullName())
}

// missingRequired are the Required flags of cmd that were not set, as
// "--name".
func missingRequired(cmd *cli.Command) []string {
	var out []string
	for _, f := range cmd.Flags {
		if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() && !cmd.IsSet(f.Names()[0]) {
			out = append(out, "--"+f.Names()[0])
		}
	}
	return out
}

// joinAnd joins "a", "b", "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// requiredMark ends the usage of every Required flag.
const requiredMark = " (required)"

// markRequired appends requiredMark to the usage of the Required flags:
// urfave/cli's help does not say which flags are.
func markRequired(flags []cli.Flag) {
	for _, f := range flags {
		r, ok := f.(cli.RequiredFlag)
		if !ok || !r.IsRequired() {
			continue
		}
		var usage *string
		switch f := f.(type) {
		case *cli.StringFlag:
			usage = &f.Usage
		case *cli.IntFlag:
			usage = &f.Usage
		case *cli.BoolFlag:
			usage = &f.Usage
		case *cli.DurationFlag:
			usage = &f.Usage
		default:
			panic(fmt.Sprintf("markRequired: add a case for %T", f))
		}
		if !strings.HasSuffix(*usage, requiredMark) {
			*usage += requiredMark
		}
	}
}
