/*
 * alert_conf.h - turns the config's monitor.alerts section (core/config.h,
 * struct cfg_alerts) into what the alert engine and the notifiers take:
 * the built-in rules (some turned off or retuned by `defaults`), the
 * operator's rules, the burn-rate rules of every SLO, and the notifier
 * channels.
 *
 * Everything the engine and notify_new() are given points into the
 * struct alert_setup, which owns all of it (strings, matchers, label
 * arrays, channel argv): keep it alive until alert_engine_new() /
 * alert_engine_reload() and notify_new() / notify_reload() have copied
 * what they need (they copy everything), then free it.
 *
 * Errors name the place in the file a person must fix, in the config
 * loader's format: "FILE:LINE: monitor.alerts.rules[2].expr: ...".
 * Secrets (a notifier's password_file) are read here, so a reload picks
 * up a changed password; a password file readable by group or others is
 * refused, as the admin token file is.
 *
 * Threads: control thread; nothing global.
 */
#ifndef SK_MONITOR_ALERT_CONF_H
#define SK_MONITOR_ALERT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "monitor/alert.h"
#include "monitor/notify.h"

struct alert_setup {
	bool enabled;	      /* monitor.alerts.enabled (default true) */
	uint64_t interval_ms; /* between evaluations; default 5 s */
	/* state file, resolved: an absolute path, or relative to the
	 * directory of the config file; default storekeep-alerts.json
	 * next to the config file */
	char *state_path;
	char *external_url; /* NULL: none */
	uint64_t resolved_keep_ms;

	/* every rule, defaults first (disabled ones included, with
	 * disabled = true, so the engine lists them), then the operator's,
	 * then the SLOs', in config order */
	struct alert_rule *rules;
	size_t nrules;

	/* the channels, in config order */
	struct notify_conf notify;

	void *priv; /* the storage the above points into */
};

/*
 * Builds *out from cfg (cfg->monitor.alerts; cfg->path for the file
 * name in errors and for relative paths). Checks every rule with
 * alert_rule_check(), every selector with alert_selector_parse(), every
 * channel with notify_channel_check(), and that names are unique (a
 * rule may not take a built-in rule's name). Returns 0, or -EINVAL with
 * err as above, or -ENOMEM; on failure *out is NULL. The result owns
 * copies of everything: cfg may be released before it.
 * alert_setup_free(NULL) does nothing.
 */
int alert_setup_build(const struct config *cfg, struct alert_setup **out,
		      char *err, size_t errlen);
void alert_setup_free(struct alert_setup *s);

#endif
