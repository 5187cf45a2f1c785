"""Lesson mode: a guided path through the pages for a teacher to follow live (what to do, notice and ask)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One stop of the lesson: the page it happens on and what the teacher does and asks there."""

    page: str       # the page's title in the app's navigation
    title: str
    do: str         # what to click or set
    notice: str     # what the class should see
    question: str   # a question to ask the class (an answer hint follows the dash)


STEPS: tuple[Step, ...] = (
    Step("Home", "The idea",
         "Read the diagram aloud: a big teacher, a small student, two losses mixed by alpha. "
         "Then press **Run the classroom demo** (or **Train again, live** under a stored result) and let it train "
         "while you talk.",
         "Two students with the same architecture, starting weights and images; only the loss differs.",
         "Why train a second student from labels alone? — Without it we could not tell what the teacher added."),
    Step("Data", "The data",
         "Scroll through the sample images and the class counts.",
         "Every class has about the same number of images; the students will see only 40 labelled images of each.",
         "What could a student learn from a teacher that a label cannot tell it? — How much a 7 looks like a 1."),
    Step("Teacher", "The teacher",
         "Look at the training curves and the confusion matrix (train the teacher here if the demo has not yet).",
         "The teacher is good, and its mistakes are between classes that look alike.",
         "Which pairs of digits does it confuse? Why those? — They share strokes (often 4 and 9, 3 and 5, 7 and 9); "
         "the Temperature page names this teacher's pairs."),
    Step("Temperature", "Temperature",
         "Pick an image, then its class's most ambiguous one. Move **T** from 1 to 10 and back.",
         "At T = 1 most of the probability sits on one class (the caption gives the share); at higher T the wrong "
         "classes appear, in an order.",
         "What does the order of the wrong classes tell the student? — Which classes the teacher finds similar: "
         "the 'dark knowledge'."),
    Step("Distill", "Distill",
         "Read the formula with the current T and alpha. Set **Seeds** to 3 and run.",
         "The distilled student's test accuracy climbs above the scratch student's, which stalls once it has "
         "memorised its 400 labels.",
         "What happens at alpha = 0? — The distilled student becomes the scratch student: only labels remain."),
    Step("Compare", "Compare",
         "Read the accuracy bars, their error bars and the verdict line.",
         "Is the gain larger than the spread between seeds? The page says so plainly, either way.",
         "The student has far fewer parameters than the teacher: what did it keep, what did it lose? — Most of "
         "the accuracy, at a fraction of the size and time per image."),
    Step("Experiments", "When does it help?",
         "Open **Data budget** (or the **Missing class** tab) and run it, or show a stored result.",
         "The fewer labels the student has, the more the teacher's soft targets help; with every label the gap "
         "shrinks.",
         "Could a student recognise a digit it never saw a label for? — Yes, partly: the teacher's soft targets "
         "mention it."),
    Step("Your digit", "Your own digit",
         "Ask someone to draw a digit (or upload a photo of one) and look at the three models' answers at the "
         "current T.",
         "The preprocessed 28×28 image is what the models see; at higher T their second guesses appear.",
         "Do the two students agree with the teacher on an odd-looking digit? Which one agrees more? — Usually "
         "the distilled one: it was trained to imitate the teacher."),
)


def step_for(page: str) -> int | None:
    """Index of the lesson step on the page titled `page`, or None when the lesson does not stop there."""
    return next((i for i, step in enumerate(STEPS) if step.page == page), None)
