"""Loads that read several tables written together see them at one instant (read_snapshot)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from center.dag import Edge
from center.store.workflows import load_workflows
from center.tables import workflow, workflow_edge, workflow_node

OLD_NODES, NEW_NODES = {1: "all", 2: "all"}, {1: "all", 3: "all"}
OLD_EDGES, NEW_EDGES = [Edge(1, 2, "success")], [Edge(1, 3, "success")]


def _graph_rows(nodes: dict[int, str], edges: list[Edge]) -> tuple[list[Any], list[Any]]:
    return (
        [{"workflow_id": 7, "task_id": t, "join": j} for t, j in nodes.items()],
        [
            {"workflow_id": 7, "parent_task_id": e.parent, "child_task_id": e.child, "when": e.when}
            for e in edges
        ],
    )


async def test_a_workflow_edited_during_a_load_is_read_whole_old_or_whole_new(
    engine: AsyncEngine, other_writer: Engine
):
    """An edit that replaces a workflow's nodes and edges commits between the load's read of
    the nodes and its read of the edges: the load still sees the graph before the edit, not
    old nodes with new edges (an edge to a node it does not have)."""
    nodes, edges = _graph_rows(OLD_NODES, OLD_EDGES)
    async with engine.begin() as conn:
        await conn.execute(insert(workflow).values(id=7, gid=1, name="w", update_time=1))
        await conn.execute(insert(workflow_node), nodes)
        await conn.execute(insert(workflow_edge), edges)
    edited: list[str] = []

    def edit_after_the_nodes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if edited or "workflow_node" not in statement:
            return
        edited.append(statement)
        new_nodes, new_edges = _graph_rows(NEW_NODES, NEW_EDGES)
        with other_writer.begin() as writer:  # another connection, committed at once
            writer.execute(delete(workflow_node))
            writer.execute(delete(workflow_edge))
            writer.execute(insert(workflow_node), new_nodes)
            writer.execute(insert(workflow_edge), new_edges)

    event.listen(engine.sync_engine, "after_cursor_execute", edit_after_the_nodes)
    try:
        [loaded] = await load_workflows(engine)
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", edit_after_the_nodes)
    assert edited, "the edit was made while the load ran"
    assert (loaded.graph.nodes, list(loaded.graph.edges)) == (OLD_NODES, OLD_EDGES)
    [after] = await load_workflows(engine)
    assert (after.graph.nodes, list(after.graph.edges)) == (NEW_NODES, NEW_EDGES)
