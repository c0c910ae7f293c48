"""Word banks for characters: names, jobs, homes, hobbies and speech quirks.

Kept apart from the logic so the generator's variety can grow by adding lines here. Every bank is
a tuple (never a set) so that sampling with a seeded `random.Random` is reproducible.
"""

from __future__ import annotations

from typing import NamedTuple

FEMALE_NAMES: tuple[str, ...] = (
    "Clara", "Lila", "Pamela", "Selene", "Yasmine", "Margaret", "Ines", "Priya", "Hannah", "Rosa",
    "Mei", "Olga", "Beatrice", "Nadia", "Fatima", "Greta", "Joanna", "Keiko", "Lucia", "Maeve",
    "Nora", "Ophelia", "Paula", "Quinn", "Rita", "Sofia", "Tamara", "Ursula", "Vera", "Wanda",
    "Ximena", "Yolanda", "Zoe", "Amara", "Bianca", "Camille", "Delia", "Esther", "Farah", "Gloria",
    "Harriet", "Ingrid", "Jade", "Kira", "Leonor", "Martha", "Nina", "Odette", "Petra", "Ruth",
    "Sunita", "Thea", "Valentina", "Winona", "Ada", "Brenda", "Celeste", "Dolores", "Elif", "Freya",
)
MALE_NAMES: tuple[str, ...] = (
    "Hugo", "Walter", "Cedric", "Yves", "Quentin", "Arjun", "Bruno", "Carlos", "Dmitri", "Elias",
    "Felix", "Gustav", "Hamid", "Ivan", "Jonas", "Kenji", "Lorenzo", "Marcus", "Nikolai", "Omar",
    "Pablo", "Rafael", "Samuel", "Tobias", "Umberto", "Victor", "Wesley", "Xavier", "Yusuf", "Zane",
    "Abel", "Boris", "Conrad", "Desmond", "Emeka", "Finn", "Gideon", "Henrik", "Isaac", "Jasper",
    "Kofi", "Leon", "Mateo", "Neil", "Oscar", "Percy", "Rowan", "Silas", "Theo", "Vikram",
    "Warren", "Angus", "Bernard", "Clyde", "Dario", "Ezra", "Frank", "Gordon", "Hector", "Ike",
)
SURNAMES: tuple[str, ...] = (
    "Hale", "Moreau", "Okafor", "Lindqvist", "Tanaka", "Rossi", "Novak", "Brennan", "Costa",
    "Fischer", "Haddad", "Iyer", "Jansen", "Kowalski", "Larsen", "Mendez", "Nakamura", "O'Leary",
    "Petrov", "Quiroga", "Reyes", "Schmidt", "Takahashi", "Umarov", "Vasquez", "Whitfield", "Yilmaz",
    "Zielinski", "Abernathy", "Bellweather", "Castillo", "Dubois", "Eriksen", "Fontaine", "Gallagher",
    "Horvath", "Ivanova", "Jovanovic", "Kaur", "Lombardi", "Mbeki", "Nguyen", "Ostrowski", "Pereira",
    "Ramirez", "Sato", "Thornbury", "Van Dijk", "Weller", "Adeyemi", "Blackwood", "Chen", "Delacroix",
)

OCCUPATIONS: tuple[str, ...] = (
    "retired librarian", "software developer", "night-shift nurse", "high school chemistry teacher",
    "long-haul truck driver", "pastry chef", "freelance illustrator", "bank teller", "firefighter",
    "graduate student in marine biology", "retired postman", "lighthouse keeper", "court stenographer",
    "veterinary technician", "wedding planner", "tattoo artist", "forensic accountant",
    "piano tuner", "museum curator", "paramedic", "blacksmith", "yoga instructor", "data analyst",
    "taxi driver", "children's book author", "translator of medieval manuscripts", "barista",
    "structural engineer", "street performer", "private investigator", "surf instructor",
    "research chemist", "dairy farmer", "opera singer", "radio host", "locksmith", "park ranger",
    "hospital pharmacist", "stage magician", "antique dealer", "game streamer", "family lawyer",
    "kindergarten teacher", "air traffic controller", "sommelier", "retired sea captain",
    "physiotherapist", "video editor", "astronomy lecturer", "bakery owner", "security guard",
    "architect", "florist", "mechanic", "interior designer", "journalist", "dental hygienist",
)

HOMES: tuple[str, ...] = (
    "lives alone in a small city apartment", "shares a farmhouse with two dogs and a cat",
    "lives in a narrow townhouse with a teenage son", "rents a converted loft above a bakery",
    "lives with a partner and three noisy parrots", "has a cabin at the edge of the forest",
    "lives in a seaside cottage with a sleepy old retriever", "shares a flat with two roommates",
    "lives in a suburban house with a spouse and twin toddlers", "owns a houseboat on the canal",
    "lives in a studio flat full of plants", "looks after an elderly mother in a bungalow",
    "lives in a renovated lighthouse keeper's cottage", "has a ranch house with a big garage",
    "lives in a high-rise apartment with a view of the harbour", "shares a duplex with a sister",
    "lives in a tiny house on a friend's land", "has a Victorian house with creaky floors",
    "lives in a basement apartment with a greyhound", "lives in a mountain chalet most of the year",
    "lives with grandchildren who visit every weekend", "keeps a quiet terraced house in a village",
    "lives in a penthouse filled with vinyl records", "has a small farm with chickens and bees",
)


class Hobby(NamedTuple):
    """One pastime in the forms a sentence needs: noun, -ing phrase, base verb phrase, done."""

    noun: str
    doing: str
    do: str
    done: str


HOBBIES: tuple[Hobby, ...] = (
    Hobby("woodworking", "sanding the new shelves", "work on my woodworking project",
          "finished sanding the new shelves"),
    Hobby("pottery", "throwing pots on the wheel", "work at the wheel", "cleaned the clay off my hands"),
    Hobby("birdwatching", "watching the finches at the feeder", "watch the birds",
          "got back from the marsh with my binoculars"),
    Hobby("calligraphy", "practising my calligraphy", "practise some calligraphy",
          "finished a page of calligraphy"),
    Hobby("chess", "analysing a chess endgame", "go over my chess openings",
          "finished an online chess tournament"),
    Hobby("baking", "baking sourdough", "bake a batch of cookies", "pulled a loaf out of the oven"),
    Hobby("knitting", "knitting a scarf for my niece", "knit for a while",
          "finished the sleeve of a sweater"),
    Hobby("hiking", "planning my next hike", "look over the trail maps", "got back from a long hike"),
    Hobby("stargazing", "setting up the telescope", "check the star charts",
          "came in from stargazing on the porch"),
    Hobby("gardening", "repotting my tomato seedlings", "sort my seed packets",
          "came in from weeding the garden"),
    Hobby("guitar", "practising a new song on guitar", "play some guitar",
          "restrung my old acoustic guitar"),
    Hobby("painting miniatures", "painting miniatures", "paint a few miniatures",
          "primed a whole squad of miniatures"),
    Hobby("model trains", "laying track for my model railway", "tinker with the model trains",
          "finished the new station on my railway"),
    Hobby("restoring old cars", "polishing the chrome on my old Chevy", "work on the car",
          "got the engine of my old Mustang running"),
    Hobby("reading mysteries", "reading a detective novel", "curl up with a mystery novel",
          "finished the last chapter of my mystery"),
    Hobby("yoga", "doing my stretches", "do some yoga", "rolled up my yoga mat"),
    Hobby("photography", "editing photos from my last trip", "sort through my photos",
          "got back from a photo walk"),
    Hobby("surfing", "waxing my board", "shape a new board", "came back from a morning surf"),
    Hobby("cooking", "trying a new curry recipe", "cook something special",
          "cleaned up after a big dinner"),
    Hobby("video games", "playing a new RPG", "play a few rounds online",
          "beat the final boss of my game"),
    Hobby("crossword puzzles", "doing the Sunday crossword", "tackle a crossword",
          "filled in the last clue of the crossword"),
    Hobby("beekeeping", "checking the hive notes", "look after the bees",
          "came in from checking the hives"),
    Hobby("stamp collecting", "sorting my stamp albums", "organise my stamp collection",
          "mounted a rare stamp from the twenties"),
    Hobby("magic tricks", "rehearsing a card trick", "practise my sleight of hand",
          "perfected a new coin trick"),
    Hobby("opera", "rehearsing an aria", "warm up my voice", "finished my vocal exercises"),
    Hobby("fishing", "tying new flies", "sort my tackle box", "got back from the lake"),
    Hobby("dancing", "practising a new routine", "rehearse my dance steps",
          "finished my last dance class"),
    Hobby("sewing", "hemming a dress", "work at the sewing machine", "cut out a new pattern"),
    Hobby("home brewing", "bottling my latest batch of beer", "check on the brew",
          "cleaned all the brewing gear"),
    Hobby("jigsaw puzzles", "working on a huge jigsaw puzzle", "finish the puzzle edges",
          "found the last corner piece"),
    Hobby("writing poetry", "drafting a new poem", "write a little poetry",
          "finished a sonnet I've been stuck on"),
    Hobby("astronomy", "logging last night's observations", "read about the planets",
          "tracked Jupiter's moons for an hour"),
    Hobby("running", "stretching after my run", "plan tomorrow's run", "finished a long run by the river"),
    Hobby("cycling", "cleaning my bike chain", "fix my bike", "rode all the way to the coast and back"),
    Hobby("falconry", "feeding the hawks", "check on my hawks", "brought the falcon in from training"),
    Hobby("origami", "folding paper cranes", "fold some origami", "finished a hundred paper cranes"),
    Hobby("scrapbooking", "gluing photos into my scrapbook", "work on my scrapbook",
          "finished a page of the family scrapbook"),
    Hobby("vinyl collecting", "cataloguing my records", "listen to a new record",
          "found a rare pressing at the flea market"),
    Hobby("rock climbing", "checking my climbing gear", "plan my next climb",
          "got back from the climbing gym"),
    Hobby("candle making", "pouring soy candles", "make a few candles", "set a batch of candles"),
    Hobby("language learning", "reviewing my French flashcards", "practise my Spanish",
          "got back from my language class"),
    Hobby("meditation", "meditating", "sit quietly for a while", "finished my evening meditation"),
    Hobby("comic books", "reading comic book reviews", "sort my comic collection",
          "bagged and boarded my new comics"),
    Hobby("aquariums", "cleaning the fish tank", "feed the fish", "finished cleaning the aquarium"),
    Hobby("juggling", "practising with the clubs", "juggle for a bit",
          "got back from juggling in the square"),
    Hobby("tea tasting", "brewing a new oolong", "taste some new teas",
          "finished a pot of jasmine tea"),
)

# Speech quirks: words a character keeps using, beyond plain formal/casual register.
QUIRK_OPENERS: dict[str, tuple[str, ...]] = {
    "slang": ("Yo,", "Hey dude,", "Sup,", "Ayy,", "Hey man,"),
    "drawl": ("Howdy.", "Mornin'.", "Well now,", "Evenin'."),
    "british": ("Right then,", "Hiya,", "Alright?", "Hello there,"),
    "theatrical": ("Darling,", "Abracadabra!", "My dear assistant,", "Oh, splendid,"),
    "bubbly": ("Oh my gosh,", "Yay,", "Ooh,", "Hiii!"),
    "french": ("Bonjour!", "Salut!", "Ah, bonsoir."),
    "spanish": ("¡Hola!", "Buenas,", "Oye,"),
    "nautical": ("Ahoy!", "Ahoy there,", "Avast,"),
    "scientific": ("Observation:", "Status update:", "Quick note:"),
}
QUIRK_CLOSERS: dict[str, tuple[str, ...]] = {
    "slang": ("Thanks, dude.", "You rock.", "Appreciate it, man.", "Cool cool."),
    "drawl": ("Much obliged.", "Thank ya kindly.", "That'll do."),
    "british": ("Cheers.", "Lovely, ta.", "Brilliant, cheers."),
    "theatrical": ("Bravo!", "Magnificent, thank you!", "You're a star."),
    "bubbly": ("Yay, thank you!", "You're the best!", "Eee, thanks!"),
    "french": ("Merci!", "Merci beaucoup.", "Parfait, merci."),
    "spanish": ("¡Gracias!", "Muchas gracias.", "Perfecto, gracias."),
    "nautical": ("Smooth sailing, thanks.", "Aye, thank you.", "Shipshape, thanks."),
    "scientific": ("Thank you, noted.", "Optimal, thanks.", "Confirmed, thank you."),
}
QUIRK_DESCRIPTIONS: dict[str, str] = {
    "slang": "throws in slang like 'dude' and 'man'",
    "drawl": "talks with a slow country drawl",
    "british": "sprinkles in British expressions like 'cheers' and 'lovely'",
    "theatrical": "is theatrical and calls everyone 'darling'",
    "bubbly": "is bubbly and uses lots of exclamation marks",
    "french": "mixes in French words like 'bonjour' and 'merci'",
    "spanish": "mixes in Spanish words like 'hola' and 'gracias'",
    "nautical": "uses old sailing expressions",
    "scientific": "speaks precisely, like a lab report",
}
QUIRKS: tuple[str, ...] = tuple(QUIRK_OPENERS)
