"""Uses only the client openapi-python-client generated from Scoreboard's /openapi.json.

Usage: client.py <base url> <token>...   (the tokens of `finish_run` actions, minted by the test)

Submits each token, then reads the `best-run` board, a board of friends on it and the global
board, and prints what it read as one JSON object for the test to check.
"""

import json
import sys

from scoreboard_client import Client
from scoreboard_client.api.actions import submit_action
from scoreboard_client.api.boards import board_leaderboard, list_
from scoreboard_client.api.leaderboard import leaderboard
from scoreboard_client.models import Problem, SubmitAction


def ok(answer):
    """The answer, unless it is a problem document."""
    if answer is None or isinstance(answer, Problem):
        raise SystemExit(f"refused: {answer and answer.to_dict()}")
    return answer


def rows(page):
    return [[entry.rank, entry.player_id, entry.score] for entry in page.entries]


def main(base, tokens):
    client = Client(base_url=base, raise_on_unexpected_status=True)
    positions = []
    for token in tokens:
        accepted = ok(submit_action.sync(client=client, body=SubmitAction(token=token)))
        positions.append(accepted.position)
    last = max(positions)
    boards = ok(list_.sync(client=client))
    best = ok(board_leaderboard.sync(client=client, board="best-run", min_position=last))
    friends = ok(board_leaderboard.sync(client=client, board="best-run", players="cat,bob,nobody"))
    top = ok(leaderboard.sync(client=client, limit=2))
    print(json.dumps({
        "positions": positions,
        "boards": {board.id: board.aggregate for board in boards.boards},
        "best": rows(best),
        "season": best.season,
        "friends": rows(friends),
        "friends_total": friends.total_players,
        "top": rows(top),
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
