"""The original web app's data shapes (snake_case, `_id`, its statuses and timeline state)
and their mapping to and from Snipix's models. No HTTP: the web app's routes are
`snipix.api.compat`, and the legacy import and export (`snipix.legacy`) read and write the same
shapes."""
