"""MovieLens readers on small CSVs in the grouplens layout."""

import pytest

from recsys_lib.datasets.movielens import DEFAULT_COLUMN_NAMES, movielens_20m, movielens_25m

RATINGS = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,,1112484676\n7,2,4.0,1094785740\n"
MOVIES = (
    "movieId,title,genres\n"
    "2,Jumanji (1995),Adventure|Children|Fantasy\n"
    '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure|Drama\n'
)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "ratings.csv").write_text(RATINGS)
    (tmp_path / "movies.csv").write_text(MOVIES, encoding="utf-8")
    return str(tmp_path)


@pytest.mark.parametrize("reader", [movielens_20m, movielens_25m])
def test_ratings_rows(root, reader):
    rows = list(reader(root))
    assert rows == [
        {"userId": 1, "movieId": 2, "rating": 3.5, "timestamp": 1112486027},
        {"userId": 1, "movieId": 29, "rating": 0.0, "timestamp": 1112484676},  # missing rating → 0.0
        {"userId": 7, "movieId": 2, "rating": 4.0, "timestamp": 1094785740},
    ]


def test_join_movies(root):
    rows = list(movielens_20m(root, include_movies_data=True, encoding="utf-8"))
    assert list(rows[0]) == DEFAULT_COLUMN_NAMES
    assert rows[1]["title"] == "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    assert rows[2]["genres"] == "Adventure|Children|Fantasy" and rows[2]["userId"] == 7


def test_raw_rows_and_unknown_movie(root, tmp_path):
    assert list(movielens_25m(root, row_mapper=None))[0] == ["1", "2", "3.5", "1112486027"]
    (tmp_path / "ratings.csv").write_text(RATINGS + "3,999,1.0,5\n")
    with pytest.raises(ValueError, match="movieId 999, which is not in movies.csv"):
        list(movielens_20m(root, include_movies_data=True, encoding="utf-8"))
