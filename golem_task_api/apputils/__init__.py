"""Helpers apps are built on: task state in SQLite, logging, processes, app definitions.

The published golem_task_api ships these as ``golem_task_api.apputils``;
apps written for it import them from the same places:

- `apputils.task`: `SubtaskStatus` and the abstract `TaskManager`;
- `apputils.task.database`: peewee `Part`/`Subtask` models and `DBTaskManager`;
- `apputils.database`: `initialize_database` and the `database` models bind through
  (`apputils.database.fields.EnumField`);
- `apputils.start_logging`, `apputils.process`, `apputils.app_definition`.

Nothing is imported here, so ``import golem_task_api`` stays light.
"""
