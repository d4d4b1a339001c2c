package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/widgetd"
)

func widgetdCommand() *cli.Command {
	return &cli.Command{
		Name:  "widgetd",
		Usage: "serve the streamers' OBS widgets (page + websocket), live from the stats table changelogs",
		Description: "Tails the stats tables of the processors (no consumer group: run as many instances as you like\n" +
			"behind a load balancer) and serves the widget at\n" +
			"  https://{product}-widget-{customer_code}.{widget-domain}/{influencer_id}[/{campaign}]\n" +
			"  http://{listen}/{customer_code}/{product}/{influencer_id}[/{campaign}]\n" +
			"and its websocket at /ws/{customer_code}/{product}/{influencer_id}[/{campaign}].",
		Flags: flags([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: widgetd.DefaultAddr, Sources: env("widgetd-listen"),
				Usage: "host:port widgetd listens on"},
			flagWidgetDomain(),
			&cli.DurationFlag{Name: "widget-heartbeat", Value: widgetd.DefaultHeartbeatInterval, Sources: env("widget-heartbeat"),
				Usage: "interval of websocket pings and heartbeat messages; a page that hears nothing for 3 intervals reconnects"},
			&cli.IntFlag{Name: "widget-max-connections", Value: widgetd.DefaultMaxConnections, Sources: env("widget-max-connections"),
				Usage: "open websockets per widgetd instance; more are refused with 503"},
		}, kafkaFlags(), logFlags()),
		Action: runWidgetd,
	}
}

func runWidgetd(ctx context.Context, cmd *cli.Command) error {
	p, err := newPreamble(cmd)
	if err != nil {
		return err
	}
	srv, err := widgetd.New(widgetd.Config{
		Addr: cmd.String("listen"), Brokers: brokersFrom(cmd), Names: p.Names,
		Domain: cmd.String("widget-domain"), HeartbeatInterval: cmd.Duration("widget-heartbeat"),
		MaxConnections: int(cmd.Int("widget-max-connections")), Log: p.Log, Registerer: p.Metrics,
	})
	if err != nil {
		return err
	}
	return p.run(ctx, cmd, srv.Run, nil)
}

// devWidgetdFlags are dev's flags for its widgetd.
func devWidgetdFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "widgetd-listen", Value: widgetd.DefaultAddr, Sources: env("widgetd-listen"),
			Usage: "host:port of widgetd (the OBS widgets)"},
		flagWidgetDomain(),
	}
}

func startDevWidgetd(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	addr := env.Cmd.String("widgetd-listen")
	srv, err := widgetd.New(widgetd.Config{
		Addr: addr, Brokers: env.Brokers, Names: env.Names,
		Domain: env.Cmd.String("widget-domain"), Log: env.Log.With("component", "widgetd"),
		Registerer: env.Metrics,
	})
	if err != nil {
		return nil, devListenError("--widgetd-listen", "address", addr, err)
	}
	env.WidgetdURL = "http://" + browsable(srv.Addr())
	env.Banner = append(env.Banner, fmt.Sprintf("widgetd    %s/%s/%s/%s?preview=1  (the demo widget; add it to OBS without ?preview=1)",
		env.WidgetdURL, demoCustomer, demoProduct, demoInfluencer))
	return srv.Run, nil
}
