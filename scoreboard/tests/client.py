"""Uses only the client openapi-python-client generated from Scoreboard's /openapi.json.

Usage:
  client.py submit <base url> <token>...   submits each token (`finish_run` actions, minted by
                                           the test); prints the positions
  client.py read <base url> <season>       reads the `best-run` board, a board of friends on it,
                                           the global board and the results of <season>

Prints what it read as one JSON object for the test to check.
"""

import json
import sys

from scoreboard_client import Client
from scoreboard_client.api.actions import submit_action
from scoreboard_client.api.boards import board_leaderboard, list_, results
from scoreboard_client.api.leaderboard import leaderboard
from scoreboard_client.models import Problem, SubmitAction


def ok(answer):
    """The answer, unless it is a problem document."""
    if answer is None or isinstance(answer, Problem):
        raise SystemExit(f"refused: {answer and answer.to_dict()}")
    return answer


def rows(page):
    return [[entry.rank, entry.player_id, entry.score] for entry in page.entries]


def submit(client, tokens):
    accepted = [ok(submit_action.sync(client=client, body=SubmitAction(token=token))) for token in tokens]
    return {"positions": [a.position for a in accepted]}


def read(client, season):
    boards = ok(list_.sync(client=client))
    best = ok(board_leaderboard.sync(client=client, board="best-run", season=season))
    friends = ok(board_leaderboard.sync(client=client, board="best-run", season=season, players="cat,bob,nobody"))
    top = ok(leaderboard.sync(client=client, limit=2))
    final = ok(results.sync(client=client, board="best-run", season=season))
    return {
        "boards": {board.id: board.aggregate for board in boards.boards},
        "best": rows(best),
        "friends": rows(friends),
        "friends_total": friends.total_players,
        "top": rows(top),
        "results": {
            "version": final.version,
            "final_position": final.final_position,
            "signed": final.checkpoint.tree_size >= final.final_position and "\n— " in final.checkpoint.note,
            "entries": rows(final),
        },
    }


def main(command, base, rest):
    client = Client(base_url=base, raise_on_unexpected_status=True)
    answer = submit(client, rest) if command == "submit" else read(client, rest[0])
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
