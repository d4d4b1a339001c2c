package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/dashboard"
	"github.com/streamtools/streamtools/schemas"
	"github.com/streamtools/streamtools/sinks"
)

// demoLogin is the dashboard login dev seeds for the demo customer.
const demoLogin = "demo"

// usersDB are the database flags of the users commands: --database-url,
// or else the database of dev (see operatorDatabaseURL).
func usersDB() []cli.Flag {
	return []cli.Flag{flagDatabaseURL(),
		flagDevDataDir("data directory of streamtools dev: without --database-url (or STREAMTOOLS_DATABASE_URL), the database of the dev running there")}
}

func dashboardCommand() *cli.Command {
	return &cli.Command{
		Name:  "dashboard",
		Usage: "serve the brands' dashboard (pages and JSON API over Postgres); `dashboard users` manages its logins",
		Description: "Reads Postgres (the BI tables the sink writes), and the customers topic on --brokers for the\n" +
			"widget settings it shows beside the previews (without Kafka it runs, without those notes).\n" +
			"Applies pending migrations at start.\n" +
			"Create a login first: streamtools dashboard users create --customer acme --login marketing@acme.example",
		// Local: `dashboard users ...` lists and takes only its own flags.
		Flags: localFlags(flags([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8082", Sources: env("dashboard-listen"),
				Usage: "host:port the dashboard listens on"},
			flagDatabaseURL(),
			&cli.StringFlag{Name: "widget-base-url", Value: "http://127.0.0.1:8081", Sources: env("widget-base-url"),
				Usage: "widgetd's base URL, for the widget links ({base}/{customer}/{product}/{influencer}[/{campaign}]) and the live preview"},
			flagWidgetDomain(),
			&cli.BoolFlag{Name: "cookie-secure", Sources: env("cookie-secure"),
				Usage: "mark cookies Secure: set it when users reach the dashboard over HTTPS"},
			&cli.DurationFlag{Name: "session-ttl", Value: 7 * 24 * time.Hour, Sources: env("session-ttl"),
				Usage: "how long a dashboard login lasts"},
			&cli.StringFlag{Name: "proxy-header", Sources: env("proxy-header"),
				Usage: "header with the client address when a reverse proxy fronts the dashboard (e.g. X-Forwarded-For), for the login rate limit"},
			flagBrokers(), flagTopicPrefix(),
		}, logFlags())),
		Action: runDashboard,
		Commands: []*cli.Command{{
			Name:  "users",
			Usage: "create, list and delete dashboard logins (one customer each; distinct from postback access keys)",
			Commands: []*cli.Command{
				{
					Name:  "create",
					Usage: "create a login for an existing customer; prints a generated password once",
					Description: "The customer must exist (streamtools customers set): it is looked up on --brokers.\n" +
						"The database is --database-url, else STREAMTOOLS_DATABASE_URL, else that of the\n" +
						"`streamtools dev` running with --data-dir; the brokers likewise --brokers, else\n" +
						"STREAMTOOLS_BROKERS, else that dev's, else 127.0.0.1:9092.",
					Flags: []cli.Flag{
						&cli.StringFlag{Name: "customer", Required: true, Usage: "customer (brand) code whose data the login sees"},
						&cli.StringFlag{Name: "login", Required: true, Usage: "login name, e.g. an e-mail address (unique across customers)"},
						&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of stdin instead of generating one"},
						flagDatabaseURL(), flagOperatorBrokers(), flagTopicPrefix(),
						flagDevDataDir("data directory of streamtools dev: without --database-url or --brokers (or their variables), the database and the broker of the dev running there"),
					},
					Action: func(ctx context.Context, cmd *cli.Command) error {
						// Like `keys create`: a login of a customer that does
						// not exist would see nothing, and hide the typo.
						ts, err := openTenants(ctx, cmd, readOnly)
						if err != nil {
							return err
						}
						_, err = ts.customer(cmd.String("customer"))
						ts.Close()
						if err != nil {
							return err
						}
						return withDB(ctx, cmd, func(pool *pgxpool.Pool) error {
							pw, generated, err := passwordFrom(cmd)
							if err != nil {
								return err
							}
							u, err := dashboard.CreateUser(ctx, pool, cmd.String("customer"), cmd.String("login"), pw)
							if err != nil {
								if errors.Is(err, dashboard.ErrUserExists) {
									return fmt.Errorf("%w (use `streamtools dashboard users reset-password --login %s%s`)",
										err, shellQuote(cmd.String("login")), dataDirArg(cmd.String("data-dir")))
								}
								return err
							}
							fmt.Fprintf(cmd.Root().Writer, "created login %s for customer %s\n", u.Login, u.CustomerCode)
							if generated {
								fmt.Fprintf(cmd.Root().Writer, "password: %s\n(shown once; `streamtools dashboard users reset-password --login %s%s` makes a new one)\n",
									pw, shellQuote(u.Login), dataDirArg(cmd.String("data-dir")))
							}
							return nil
						})
					},
				},
				{
					Name:  "reset-password",
					Usage: "give a login a new password (prints a generated one) and end its sessions",
					Flags: append([]cli.Flag{
						&cli.StringFlag{Name: "login", Required: true, Usage: "login name"},
						&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of stdin instead of generating one"},
					}, usersDB()...),
					Action: func(ctx context.Context, cmd *cli.Command) error {
						return withDB(ctx, cmd, func(pool *pgxpool.Pool) error {
							pw, generated, err := passwordFrom(cmd)
							if err != nil {
								return err
							}
							if err := dashboard.SetPassword(ctx, pool, cmd.String("login"), pw); err != nil {
								return err
							}
							fmt.Fprintf(cmd.Root().Writer, "password of %s changed; its sessions ended\n", cmd.String("login"))
							if generated {
								fmt.Fprintf(cmd.Root().Writer, "password: %s\n", pw)
							}
							return nil
						})
					},
				},
				{
					Name:  "list",
					Usage: "list logins",
					Flags: append([]cli.Flag{&cli.StringFlag{Name: "customer", Usage: "only this customer's logins"}}, usersDB()...),
					Action: func(ctx context.Context, cmd *cli.Command) error {
						return withDB(ctx, cmd, func(pool *pgxpool.Pool) error {
							users, err := dashboard.ListUsers(ctx, pool, cmd.String("customer"))
							if err != nil {
								return err
							}
							w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
							fmt.Fprintln(w, "CUSTOMER\tLOGIN\tCREATED\tLAST LOGIN")
							for _, u := range users {
								last := "never"
								if u.LastLoginAt != nil {
									last = u.LastLoginAt.UTC().Format(time.RFC3339)
								}
								fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", u.CustomerCode, u.Login, u.CreatedAt.UTC().Format(time.RFC3339), last)
							}
							return w.Flush()
						})
					},
				},
				{
					Name:      "delete",
					Usage:     "delete a login; its sessions end at once",
					ArgsUsage: " ",
					Flags:     append([]cli.Flag{&cli.StringFlag{Name: "login", Required: true, Usage: "login name"}}, usersDB()...),
					Action: func(ctx context.Context, cmd *cli.Command) error {
						return withDB(ctx, cmd, func(pool *pgxpool.Pool) error {
							if err := dashboard.DeleteUser(ctx, pool, cmd.String("login")); err != nil {
								return err
							}
							fmt.Fprintf(cmd.Root().Writer, "deleted login %s\n", cmd.String("login"))
							return nil
						})
					},
				},
			},
		}},
	}
}

// devDashboardFlags are dev's flags for its dashboard.
func devDashboardFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "dashboard-listen", Value: "127.0.0.1:8082", Sources: env("dashboard-listen"),
			Usage: "host:port of the dashboard"},
		&cli.StringFlag{Name: "dashboard-widget-base-url", Sources: env("widget-base-url"),
			Usage: "widgetd's base URL as the dashboard links it (default: http:// and the address of --widgetd-listen)"},
	}
}

// localFlags returns copies of flags that apply to their own command only,
// not to its subcommands.
func localFlags(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			c := *f
			c.Local = true
			out[i] = &c
		case *cli.BoolFlag:
			c := *f
			c.Local = true
			out[i] = &c
		case *cli.DurationFlag:
			c := *f
			c.Local = true
			out[i] = &c
		default:
			panic(fmt.Sprintf("localFlags: add a case for %T", f))
		}
	}
	return out
}

// operatorDatabaseURL is the database of the operator commands that use one
// (dashboard users, replay): --database-url, else STREAMTOOLS_DATABASE_URL,
// else the URL that `streamtools dev` wrote in --data-dir while it runs.
// file is that file when the URL came from it.
func operatorDatabaseURL(cmd *cli.Command) (url, file string, err error) {
	if url = cmd.String("database-url"); url != "" {
		return url, "", nil
	}
	file = filepath.Join(cmd.String("data-dir"), devDatabaseURLFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("--database-url (STREAMTOOLS_DATABASE_URL) is required: the PostgreSQL URL the sink writes to "+
			"(with `streamtools dev` running, its database is found through %s; give --data-dir if dev runs with another)", file)
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the database URL of streamtools dev: %w", err)
	}
	return strings.TrimSpace(string(b)), file, nil
}

// withDB opens a pool on the users commands' database (operatorDatabaseURL),
// applies pending migrations and runs fn.
func withDB(ctx context.Context, cmd *cli.Command, fn func(*pgxpool.Pool) error) error {
	url, file, err := operatorDatabaseURL(cmd)
	if err != nil {
		return err
	}
	if _, err := sinks.Migrate(ctx, url, nil); err != nil {
		if file != "" {
			return fmt.Errorf("%w (the database of the streamtools dev that wrote %s: is it still running? else pass --database-url)", err, file)
		}
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting to the database: %w", err)
	}
	defer pool.Close()
	return fn(pool)
}

// dashboardPool opens the dashboard's pool: 16 connections unless the URL
// sets pool_max_conns, since each running CSV export holds one.
func dashboardPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing --database-url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	return pool, nil
}

func passwordFrom(cmd *cli.Command) (pw string, generated bool, err error) {
	if !cmd.Bool("password-stdin") {
		return dashboard.GeneratePassword(), true, nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", false, fmt.Errorf("reading the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), false, nil
}

func runDashboard(ctx context.Context, cmd *cli.Command) error {
	p, err := newPreamble(cmd)
	if err != nil {
		return err
	}
	url := cmd.String("database-url")
	if url == "" {
		return errors.New("--database-url (STREAMTOOLS_DATABASE_URL) is required: the PostgreSQL URL the sink writes to")
	}
	if _, err := sinks.Migrate(ctx, url, p.Log); err != nil {
		return err
	}
	names := schemas.NewNames(cmd.String("topic-prefix"))
	if err := names.Validate(); err != nil {
		return err
	}
	pool, err := dashboardPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	cfg := dashboard.Config{
		Addr: cmd.String("listen"), WidgetBaseURL: cmd.String("widget-base-url"), WidgetDomain: cmd.String("widget-domain"),
		CookieSecure: cmd.Bool("cookie-secure"), SessionTTL: cmd.Duration("session-ttl"), ProxyHeader: cmd.String("proxy-header"), Log: p.Log,
	}
	var products *productTail
	if brokers := brokersFrom(cmd); len(brokers) > 0 {
		products = &productTail{brokers: brokers, names: names, log: p.Log}
		cfg.Products = products.Products
	}
	srv, err := dashboard.New(cfg, pool)
	if err != nil {
		return err
	}
	return p.run(ctx, cmd, func(ctx context.Context) error { return runWithProducts(ctx, srv.Run, products) }, nil)
}

// runWithProducts runs serve (the dashboard's) and, when set, tails the
// products for it, until ctx is done.
func runWithProducts(ctx context.Context, serve func(context.Context) error, products *productTail) error {
	if products == nil {
		return serve(ctx)
	}
	tctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { products.Run(tctx) })
	defer wg.Wait()
	defer stop()
	return serve(ctx)
}

// startDevDashboard runs the dashboard in dev, with a login for the demo
// customer whose password is kept in the data directory, so that it and
// the browser's session survive restarts.
func startDevDashboard(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	urlFile := filepath.Join(env.DataDir, devDatabaseURLFile)
	if env.DatabaseURL == "" {
		// A file left by a dev that was killed names a database that is
		// not running.
		if err := os.Remove(urlFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing %s: %w", urlFile, err)
		}
		env.Banner = append(env.Banner, "dashboard  off: it needs Postgres (see the postgres line)")
		return nil, nil
	}
	// Listen first: a busy address is the likeliest failure, and says
	// which flag to change.
	addr := env.Cmd.String("dashboard-listen")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, devListenError("--dashboard-listen", "address", addr, err)
	}
	run, err := prepareDevDashboard(ctx, env, ln, urlFile)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return run, nil
}

// prepareDevDashboard is startDevDashboard once it listens on ln.
func prepareDevDashboard(ctx context.Context, env *devEnv, ln net.Listener, urlFile string) (func(context.Context) error, error) {
	if _, err := sinks.Migrate(ctx, env.DatabaseURL, env.Log); err != nil {
		return nil, err
	}
	pool, err := dashboardPool(ctx, env.DatabaseURL)
	if err != nil {
		return nil, err
	}
	password, err := seedDemoLogin(ctx, pool, filepath.Join(env.DataDir, "dashboard-demo-password"))
	if err != nil {
		pool.Close()
		return nil, err
	}
	widgetBase := env.Cmd.String("dashboard-widget-base-url")
	if !env.Cmd.IsSet("dashboard-widget-base-url") {
		widgetBase = env.WidgetdURL
		if widgetBase == "" { // no widgetd part before this one
			widgetBase = "http://" + browsable(env.Cmd.String("widgetd-listen"))
		}
	}
	log := env.Log.With("component", "dashboard")
	products := &productTail{brokers: env.Brokers, names: env.Names, log: log}
	srv, err := dashboard.New(dashboard.Config{Addr: ln.Addr().String(), WidgetBaseURL: widgetBase,
		Products: products.Products, Log: log}, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// For `dashboard users` and replay (operatorDatabaseURL), as private as the demo
	// password: the URL of an external database may hold a password.
	if err := os.WriteFile(urlFile, []byte(env.DatabaseURL+"\n"), 0o600); err != nil {
		pool.Close()
		return nil, fmt.Errorf("writing the database URL for `dashboard users`: %w", err)
	}
	env.Banner = append(env.Banner, fmt.Sprintf("dashboard  %s  (login %s, password %s; customer %s; more logins: streamtools dashboard users create --customer %s --login you@example.com%s)",
		dashboard.LoginURL(browsable(ln.Addr().String()), demoLogin), demoLogin, password, demoCustomer, demoCustomer, dataDirArg(env.DataDir)))
	return func(ctx context.Context) error {
		defer pool.Close()
		defer os.Remove(urlFile) // the database stops with dev
		return runWithProducts(ctx, func(ctx context.Context) error { return srv.Serve(ctx, ln) }, products)
	}, nil
}

// seedDemoLogin makes sure the demo login exists with the password kept in
// file, creating either as needed, and returns the password.
func seedDemoLogin(ctx context.Context, pool *pgxpool.Pool, file string) (string, error) {
	b, err := os.ReadFile(file)
	password := strings.TrimSpace(string(b))
	if err != nil || len(password) < dashboard.MinPasswordLen {
		password = dashboard.GeneratePassword()
		if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("saving the demo dashboard password: %w", err)
		}
	}
	_, err = dashboard.Authenticate(ctx, pool, demoLogin, password)
	switch {
	case err == nil:
		return password, nil
	case !errors.Is(err, dashboard.ErrBadPassword):
		return "", err
	}
	// No demo login yet, or its password changed since the file was made.
	_, err = dashboard.CreateUser(ctx, pool, demoCustomer, demoLogin, password)
	if errors.Is(err, dashboard.ErrUserExists) {
		err = dashboard.SetPassword(ctx, pool, demoLogin, password)
	}
	if err != nil {
		return "", fmt.Errorf("seeding the demo dashboard login: %w", err)
	}
	return password, nil
}
