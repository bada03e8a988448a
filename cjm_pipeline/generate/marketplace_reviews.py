"""Review texts for the marketplace profile: short phrases per language and tone,
written for this generator, combined at random so that texts vary.

Tones: ``good`` (ratings 4 and 5), ``mixed`` (3) and ``bad`` (1 and 2); ``late``
details complain about a late delivery. Italian and Dutch stand for languages the
pipeline has no sentiment scorer for.
"""

from __future__ import annotations

import random

# language -> share of the reviews that have text
LANGUAGES = {"pt": 0.55, "es": 0.13, "en": 0.12, "de": 0.07, "fr": 0.07, "it": 0.03, "nl": 0.03}

PHRASES: dict[str, dict[str, list[str]]] = {
    "pt": {
        "title_good": ["Recomendo", "Muito bom", "Adorei", "Ótima compra", "Perfeito"],
        "title_mixed": ["Razoável", "Mais ou menos", "Poderia ser melhor"],
        "title_bad": ["Decepcionado", "Não recomendo", "Péssimo", "Produto com defeito"],
        "good": [
            "Produto de ótima qualidade.",
            "Chegou antes do prazo, muito bem embalado.",
            "Exatamente como na descrição.",
            "Gostei muito, vale cada centavo.",
            "Entrega rápida e vendedor atencioso.",
        ],
        "mixed": [
            "O produto é bom, mas a embalagem veio amassada.",
            "Cumpre o que promete, nada de especial.",
            "Achei o material um pouco fraco pelo preço.",
        ],
        "bad": [
            "Veio quebrado e ninguém responde.",
            "Produto diferente do anunciado.",
            "Qualidade muito ruim, quero devolver.",
            "Faltou uma peça no pedido.",
        ],
        "late": [
            "Ainda não recebi direito, chegou com muito atraso.",
            "A entrega atrasou mais de uma semana.",
            "Prazo de entrega não foi cumprido.",
        ],
        "close_good": ["Compraria de novo.", "Super recomendo!", "Obrigado!"],
        "close_bad": ["Não compro mais.", "Estou esperando o reembolso."],
    },
    "es": {
        "title_good": ["Muy bueno", "Recomendado", "Excelente compra"],
        "title_mixed": ["Regular", "Está bien"],
        "title_bad": ["Muy malo", "No lo recomiendo", "Decepción"],
        "good": [
            "Llegó rápido y en perfecto estado.",
            "La calidad es excelente.",
            "Tal como se ve en las fotos.",
            "Muy contento con la compra.",
        ],
        "mixed": [
            "Cumple, aunque esperaba algo más.",
            "El producto está bien, el envío un poco lento.",
        ],
        "bad": [
            "Llegó roto y nadie contesta.",
            "No se parece a la descripción.",
            "Mala calidad, lo voy a devolver.",
        ],
        "late": ["El pedido llegó con mucho retraso.", "Tardó semanas en llegar."],
        "close_good": ["Volvería a comprar.", "¡Gracias!"],
        "close_bad": ["No vuelvo a comprar aquí."],
    },
    "en": {
        "title_good": ["Great value", "Love it", "Very happy"],
        "title_mixed": ["It's okay", "Average"],
        "title_bad": ["Disappointed", "Poor quality", "Not as described"],
        "good": [
            "Arrived quickly and well packed.",
            "Excellent quality for the price.",
            "Exactly what I ordered, works perfectly.",
            "Really pleased with this purchase.",
        ],
        "mixed": ["Does the job, nothing special.", "Decent, but the box was damaged."],
        "bad": [
            "Arrived broken and support never replied.",
            "Cheap material, it fell apart in days.",
            "Wrong item in the parcel.",
        ],
        "late": ["Delivery was very late.", "It took weeks longer than promised."],
        "close_good": ["Would buy again.", "Highly recommend."],
        "close_bad": ["Waiting for a refund.", "Never again."],
    },
    "de": {
        "title_good": ["Sehr gut", "Top", "Empfehlenswert"],
        "title_mixed": ["Geht so", "In Ordnung"],
        "title_bad": ["Enttäuscht", "Nicht zu empfehlen"],
        "good": [
            "Schnelle Lieferung, alles bestens.",
            "Sehr gute Qualität, gerne wieder.",
            "Genau wie beschrieben.",
        ],
        "mixed": ["Ganz okay, aber nichts Besonderes.", "Funktioniert, die Verpackung war kaputt."],
        "bad": ["Kam beschädigt an.", "Schlechte Qualität, geht zurück."],
        "late": ["Die Lieferung kam viel zu spät.", "Wochenlang auf das Paket gewartet."],
        "close_good": ["Danke!", "Klare Kaufempfehlung."],
        "close_bad": ["Nie wieder."],
    },
    "fr": {
        "title_good": ["Très bien", "Parfait", "Je recommande"],
        "title_mixed": ["Correct", "Moyen"],
        "title_bad": ["Déçu", "À éviter"],
        "good": [
            "Livraison rapide, produit conforme.",
            "Très bonne qualité, rien à redire.",
            "Bien emballé et arrivé en avance.",
        ],
        "mixed": ["Correct sans plus.", "Le produit va, mais le colis était abîmé."],
        "bad": ["Arrivé cassé, aucune réponse du vendeur.", "Qualité médiocre, je le renvoie."],
        "late": ["La livraison a pris beaucoup de retard.", "Reçu avec trois semaines de retard."],
        "close_good": ["Merci !", "J'achèterai à nouveau."],
        "close_bad": ["Je ne recommande pas."],
    },
    "it": {
        "title_good": ["Ottimo", "Consigliato"],
        "title_mixed": ["Discreto"],
        "title_bad": ["Deluso", "Pessimo"],
        "good": ["Arrivato presto e ben imballato.", "Ottima qualità, come descritto."],
        "mixed": ["Niente di speciale, ma funziona."],
        "bad": ["Arrivato rotto, nessuna risposta.", "Qualità scadente."],
        "late": ["La consegna è arrivata con molto ritardo."],
        "close_good": ["Grazie!"],
        "close_bad": ["Non lo ricomprerei."],
    },
    "nl": {
        "title_good": ["Prima", "Aanrader"],
        "title_mixed": ["Redelijk"],
        "title_bad": ["Teleurgesteld", "Slecht"],
        "good": ["Snel geleverd en netjes verpakt.", "Goede kwaliteit, zoals beschreven."],
        "mixed": ["Het werkt, maar niet meer dan dat."],
        "bad": ["Kapot aangekomen, geen reactie van de verkoper.", "Slechte kwaliteit."],
        "late": ["De levering was veel te laat."],
        "close_good": ["Bedankt!"],
        "close_bad": ["Nooit meer."],
    },
}


def tone(rating: int) -> str:
    return "good" if rating >= 4 else "mixed" if rating == 3 else "bad"


def compose(rng: random.Random, language: str, rating: int, late: bool) -> tuple[str, str]:
    """A (title, text) in ``language`` whose tone matches ``rating``; a low rating of a
    late order mostly complains about the delay. The title may be empty."""
    words = PHRASES[language]
    kind = tone(rating)
    if kind == "bad" and late and rng.random() < 0.7:
        body = [rng.choice(words["late"])]
    else:
        body = [rng.choice(words[kind])]
    if kind != "mixed" and rng.random() < 0.4:
        body.append(rng.choice(words["close_good" if kind == "good" else "close_bad"]))
    title = rng.choice(words[f"title_{kind}"]) if rng.random() < 0.7 else ""
    return title, " ".join(body)
