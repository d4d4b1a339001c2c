package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// tenantSession is a registry caught up with the tenant topics plus a
// producer, for the operator commands below.
type tenantSession struct {
	reg   *tenant.Registry
	cl    *kgo.Client
	names schemas.Names
	stop  func() error // ends the registry's Run and returns its error
}

// tenantAccess says whether an operator command may create the tenant
// topics: a read-only one must not, or a typo in --topic-prefix creates
// empty topics and shows an empty list.
type tenantAccess int

const (
	readOnly tenantAccess = iota // the topics must exist
	writing                      // the topics are created if missing
)

func openTenants(ctx context.Context, cmd *cli.Command, access tenantAccess) (*tenantSession, error) {
	// Tenant topics do not depend on the processor generation.
	names := schemas.NewNames(cmd.String("topic-prefix"))
	if err := names.Validate(); err != nil {
		return nil, err
	}
	brokers, err := operatorBrokers(cmd)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers.addrs...), kgo.RecordPartitioner(kafkautil.Partitioner()))
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := prepareTenantTopics(tctx, cl, names, brokers, access); err != nil {
		cl.Close()
		return nil, err
	}
	reg, err := tenant.NewRegistry(brokers.addrs, names, nil)
	if err != nil {
		cl.Close()
		return nil, err
	}
	stop, err := runRegistry(ctx, reg, 15*time.Second)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &tenantSession{reg: reg, cl: cl, names: names, stop: stop}, nil
}

// prepareTenantTopics creates the tenant topics (writing), or checks that
// the ones the registry reads exist (readOnly).
func prepareTenantTopics(ctx context.Context, cl *kgo.Client, names schemas.Names, brokers operatorBrokerAddrs, access tenantAccess) error {
	if access == writing {
		var specs []kafkautil.TopicSpec
		for _, t := range kafkautil.CoreTopics(names, 0) {
			if t.Name == names.Customers() || t.Name == names.AccessKeys() || t.Name == names.Salts() {
				specs = append(specs, t)
			}
		}
		if err := kafkautil.EnsureTopics(ctx, cl, specs); err != nil {
			return brokers.unreachable(err)
		}
		return nil
	}
	// A metadata request that names topics, without creating them.
	topics := []string{names.Customers(), names.AccessKeys()}
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return brokers.unreachable(err)
	}
	for _, topic := range topics {
		d, ok := details[topic]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			return fmt.Errorf("topic %s does not exist on the brokers %s (%s): check --topic-prefix (%q; the default is %q)",
				topic, strings.Join(brokers.addrs, ","), brokers.from, names.Prefix, schemas.DefaultPrefix)
		case d.Err != nil:
			return fmt.Errorf("looking topic %s up on the brokers %s: %w", topic, strings.Join(brokers.addrs, ","), d.Err)
		}
	}
	return nil
}

// Close stops the registry and closes the producer; it returns the
// registry's error, if it had one.
func (s *tenantSession) Close() error {
	defer s.cl.Close()
	return s.stop()
}

// runRegistry runs reg on ctx in the background and waits, at most wait,
// until it has read the tenant topics to their end. stop ends the Run and
// returns what it returned; call it once. When Run fails first, or wait
// passes, runRegistry returns that error and reg is not running.
func runRegistry(ctx context.Context, reg *tenant.Registry, wait time.Duration) (stop func() error, err error) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- reg.Run(rctx) }()
	stop = func() error {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("reading the tenant topics: %w", err)
		}
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-reg.Ready():
		return stop, nil
	case err := <-done:
		cancel()
		if err == nil {
			err = ctx.Err() // Run returns nil once ctx is done
		}
		return nil, fmt.Errorf("reading the tenant topics: %w", err)
	case <-timer.C:
		return nil, errors.Join(fmt.Errorf("reading the tenant topics: not at their end after %v", wait), stop())
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("reading the tenant topics: %w", ctx.Err()), stop())
	}
}

// customer returns the customer with code, or an error that says how to
// create it: every command that names a customer refuses one that does not
// exist.
func (s *tenantSession) customer(code string) (*tenant.Tenant, error) {
	t, ok := s.reg.Customer(code)
	if !ok {
		return nil, fmt.Errorf("--customer %q does not exist: create it with `streamtools customers set --code %s` (`streamtools customers list` lists them)", code, code)
	}
	return t, nil
}

// withTenants wraps an action that needs the tenant topics read to their
// end; access says whether it may create them.
func withTenants(access tenantAccess, fn func(context.Context, *cli.Command, *tenantSession) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		s, err := openTenants(ctx, cmd, access)
		if err != nil {
			return err
		}
		err = fn(ctx, cmd, s)
		return errors.Join(err, s.Close())
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// flagCustomer is the --customer of customers product and keys create.
func flagCustomer() cli.Flag {
	return &cli.StringFlag{Name: "customer", Required: true, Usage: "customer (brand) code"}
}

func customersCommand() *cli.Command {
	return &cli.Command{
		Name:  "customers",
		Usage: "create, change and list customers (brands) and their products; running components pick changes up live",
		Commands: []*cli.Command{
			{
				Name:  "set",
				Usage: "create a customer, or change the given settings of an existing one",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "code", Required: true, Usage: "customer code, as in the widget URL (e.g. acme)"},
					&cli.StringFlag{Name: "name", Usage: "display name"},
					&cli.StringFlag{Name: "timezone", Usage: "IANA time zone that defines \"the same day\" (default UTC for a new customer)"},
					&cli.BoolFlag{Name: "anticheat", Usage: "filter the same visitor doing the same action twice on one day (--anticheat=false to turn off)"},
					&cli.IntFlag{Name: "rate-limit", Usage: "postbacks per second per access key; 0 = the edge's default"},
				}, tenantFlags()...),
				Action: withTenants(writing, func(ctx context.Context, cmd *cli.Command, s *tenantSession) error {
					c := schemas.Customer{Code: cmd.String("code"), TimeZone: "UTC"}
					if t, ok := s.reg.Customer(c.Code); ok {
						c = t.Customer
					}
					if cmd.IsSet("name") {
						c.Name = cmd.String("name")
					}
					if cmd.IsSet("timezone") {
						c.TimeZone = cmd.String("timezone")
					}
					if cmd.IsSet("anticheat") {
						c.AntiCheat = cmd.Bool("anticheat")
					}
					if cmd.IsSet("rate-limit") {
						c.RateLimit = cmd.Int("rate-limit")
					}
					if err := tenant.PutCustomer(ctx, s.cl, s.names, c); err != nil {
						return err
					}
					fmt.Fprintf(cmd.Root().Writer, "customer %s saved (timezone %s, anticheat %v)\n", c.Code, c.TimeZone, c.AntiCheat)
					return nil
				}),
			},
			{
				Name:  "product",
				Usage: "create or change a product (widget code) of a customer and its widget settings",
				Flags: append([]cli.Flag{
					flagCustomer(),
					&cli.StringFlag{Name: "code", Required: true, Usage: "product (widget) code"},
					&cli.StringFlag{Name: "title", Usage: "widget title"},
					&cli.StringFlag{Name: "event-types", Usage: "event types the widget counts, comma separated (empty = all)"},
					&cli.IntFlag{Name: "goal", Usage: "widget goal"},
					&cli.BoolFlag{Name: "delete", Usage: "remove the product instead"},
				}, tenantFlags()...),
				Action: withTenants(writing, func(ctx context.Context, cmd *cli.Command, s *tenantSession) error {
					t, err := s.customer(cmd.String("customer"))
					if err != nil {
						return err
					}
					c := t.Customer
					products := map[string]schemas.Product{}
					for k, v := range c.Products {
						products[k] = v
					}
					code := cmd.String("code")
					if cmd.Bool("delete") {
						delete(products, code)
					} else {
						p := products[code]
						p.Code = code
						if cmd.IsSet("title") {
							p.Title = cmd.String("title")
						}
						if cmd.IsSet("event-types") {
							p.EventTypes = splitList(cmd.String("event-types"))
						}
						if cmd.IsSet("goal") {
							p.Goal = int64(cmd.Int("goal"))
						}
						products[code] = p
					}
					c.Products = products
					if err := tenant.PutCustomer(ctx, s.cl, s.names, c); err != nil {
						return err
					}
					fmt.Fprintf(cmd.Root().Writer, "customer %s: %d product(s)\n", c.Code, len(products))
					return nil
				}),
			},
			{
				Name:  "list",
				Usage: "list customers and their products, with each product's widget settings (title, goal, counted event types)",
				Flags: tenantFlags(),
				Action: withTenants(readOnly, func(ctx context.Context, cmd *cli.Command, s *tenantSession) error {
					cs := s.reg.Customers()
					sort.Slice(cs, func(i, j int) bool { return cs[i].Code < cs[j].Code })
					return listCustomers(cmd.Root().Writer, cs)
				}),
			},
		},
	}
}

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "create, revoke and list postback access keys; running edges pick changes up live",
		Commands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create an access key for a customer and print it (once: only its hash is stored)",
				Flags: append([]cli.Flag{flagCustomer(), &cli.StringFlag{Name: "label", Usage: "what the key is for"}}, tenantFlags()...),
				Action: withTenants(writing, func(ctx context.Context, cmd *cli.Command, s *tenantSession) error {
					code := cmd.String("customer")
					if _, err := s.customer(code); err != nil {
						return err
					}
					key, rec, err := tenant.CreateKey(ctx, s.cl, s.names, code, cmd.String("label"))
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.Root().ErrWriter, "access key for %s (id %s); store it now, it is not shown again:\n", code, rec.Hash[:12])
					fmt.Fprintln(cmd.Root().Writer, key)
					return nil
				}),
			},
			{
				Name:      "revoke",
				Usage:     "revoke a key, given the key itself or the id (hash prefix) that `keys list` shows",
				ArgsUsage: "<key or id>",
				Flags:     tenantFlags(),
				Action: withTenants(writing, func(ctx context.Context, cmd *cli.Command, s *tenantSession) error {
					arg := cmd.Args().First()
					if arg == "" {
						return fmt.Errorf("give the key or its id (from `streamtools keys list`) as the argument")
					}
					rec, err := findKey(s.reg.Keys(), arg)
					if err != nil {
						return err
					}
					if err := tenant.RevokeKey(ctx, s.cl, s.names, rec); err != nil {
						return err
					}
					fmt.Fprintf(cmd.Root().Writer, "key %s of %s revoked\n", rec.Hash[:12], rec.CustomerCode)
					return nil
				}),
			},
			{
				Name:  "list",
				Usage: "list keys (ids only; keys themselves are never stored)",
				Flags: append([]cli.Flag{&cli.StringFlag{Name: "customer", Usage: "only this customer's keys"}}, tenantFlags()...),
				Action: withTenants(readOnly, func(ctx context.Context, cmd *cli.Command, s *tenantSession) error {
					ks := s.reg.Keys()
					sort.Slice(ks, func(i, j int) bool { return ks[i].CreatedAt.Before(ks[j].CreatedAt) })
					w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "ID\tCUSTOMER\tLABEL\tCREATED\tREVOKED")
					for _, k := range ks {
						if c := cmd.String("customer"); c != "" && k.CustomerCode != c {
							continue
						}
						revoked := ""
						if k.RevokedAt != nil {
							revoked = k.RevokedAt.Format(time.RFC3339)
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.Hash[:12], k.CustomerCode, k.Label, k.CreatedAt.Format(time.RFC3339), revoked)
					}
					return w.Flush()
				}),
			},
		},
	}
}

// listCustomers writes one line per product of each customer (a customer
// without products accepts any product code), with the settings its widget
// starts from: title, goal (none: no bar) and the event types it counts
// (all when the product names none).
func listCustomers(out io.Writer, cs []*tenant.Tenant) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CODE\tNAME\tTIMEZONE\tANTICHEAT\tRATE LIMIT\tPRODUCT\tTITLE\tGOAL\tEVENT TYPES")
	for _, c := range cs {
		codes := slices.Sorted(maps.Keys(c.Products))
		head := fmt.Sprintf("%s\t%s\t%s\t%v\t%d", c.Code, c.Name, c.TimeZone, c.AntiCheat, c.RateLimit)
		if len(codes) == 0 {
			fmt.Fprintf(w, "%s\t(any)\t\t\t\n", head)
		}
		for i, code := range codes {
			p := c.Products[code]
			if i > 0 {
				head = "\t\t\t\t"
			}
			title, goal, types := p.Title, "none", "all"
			if title == "" {
				title = "-"
			}
			if p.Goal > 0 {
				goal = strconv.FormatInt(p.Goal, 10)
			}
			if len(p.EventTypes) > 0 {
				types = strings.Join(p.EventTypes, ",")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", head, code, title, goal, types)
		}
	}
	return w.Flush()
}

// findKey finds a key record by the key itself or by a hash prefix of at
// least 8 characters.
func findKey(keys []schemas.AccessKey, arg string) (schemas.AccessKey, error) {
	h := tenant.HashKey(arg)
	var found []schemas.AccessKey
	for _, k := range keys {
		if k.Hash == h || (len(arg) >= 8 && strings.HasPrefix(k.Hash, arg)) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return schemas.AccessKey{}, fmt.Errorf("no key matches %q: give the key or an id of 8+ characters from `streamtools keys list`", arg)
	case 1:
		return found[0], nil
	default:
		return schemas.AccessKey{}, tenant.ErrAmbiguousKey
	}
}

// tenantFlags are the flags of the customers and keys commands: the tenant
// topics depend on the topic prefix only.
func tenantFlags() []cli.Flag {
	return []cli.Flag{flagOperatorBrokers(), flagTopicPrefix(),
		flagDevDataDir("data directory of streamtools dev: without --brokers (or STREAMTOOLS_BROKERS), the broker of the dev running there")}
}
