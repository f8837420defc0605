"""The operator's console: one local web page, served with /healthz and /metrics
(`firmware_app.web.server`), to watch the kiosk live, preview the screen (`console.preview`), edit
and apply the config through the SIGHUP reload, replace the portrait and trim the A/V delay.
`security` decides who may use it; `configfile` is the only code that writes."""
